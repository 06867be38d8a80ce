// Not installed: optimal_assignment with its inner loop chosen, for flowlab's tests and benchmarks.
#pragma once

#include <string>

#include "flowlab/export.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

/// The inner loop of optimal_assignment: `best` is AVX2 where the CPU has it (x86-64), else portable C++. Every
/// kernel gives the same assignment bit for bit; the others exist so tests can check that.
enum class AssignmentKernel { best, avx2, scalar };

/// optimal_assignment (transport.hpp) with the given inner loop.
FLOWLAB_API Tensor optimal_assignment(const Tensor& cost, const std::string& owner, AssignmentKernel kernel);

}  // namespace flowlab
