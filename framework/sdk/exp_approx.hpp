// exp(x) in float for the vectorised loops of fused.cpp and blocked.cpp (internal to the SDK). Both files are
// built with -ffp-contract=off and cloned per ISA (FLOWLAB_CPU_CLONES), so every clone rounds alike.
#pragma once

#include <cstdint>
#include <cstring>

#include <algorithm>

namespace flowlab {
namespace detail {

// Every helper a clone calls is forced inline: one that the compiler leaves out of line runs at the baseline's
// width (SSE2) inside the AVX-512 clone (perf showed forward_rows so, 3x slower).
#define FLOWLAB_INLINE inline __attribute__((always_inline))

// The clamp of exp_approx, passed in rather than written as constants: with constant bounds GCC splits the
// vectorised loop into the clamped cases (three divisions per vector instead of one).
struct ExpRange {
  float lo = -87.3365478515625f, hi = 88.3762626647949f;
};

// exp(x) in float: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, and Cephes' degree-6 polynomial (expf.c);
// within 2 ulp of the correctly rounded value. x is clamped to [r.lo, r.hi], where 2^n stays a normal float;
// NaN passes through (std::min and std::max keep their first argument when the compare fails).
FLOWLAB_INLINE float exp_approx(float x, ExpRange range) {
  x = std::min(x, range.hi);
  x = std::max(x, range.lo);
  // Round x log2(e) to the nearest integer by adding and subtracting 1.5 * 2^23.
  constexpr float kShift = 12582912.0f;
  const float shifted = x * 1.44269504088896341f + kShift;
  const float n = shifted - kShift;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  uint32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);             // the low mantissa bits of `shifted` hold n
  const uint32_t e = (bits - 0x4B400000u + 127u) << 23;  // 2^n; unsigned, so a NaN's bits wrap, defined
  float scale;
  std::memcpy(&scale, &e, sizeof scale);
  return p * scale;
}

}  // namespace detail
}  // namespace flowlab
