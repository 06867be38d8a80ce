// NumPy's .npy and .npz files (not part of the SDK; compiled into the plugin libraries that use it: the `array`
// dataset and the `frechet` metric). .npy is parsed by the format's specification (numpy.lib.format, versions 1-3:
// magic, header length, a Python dict literal with 'descr', 'fortran_order' and 'shape', then the raw data); .npz is
// a zip archive of .npy members (stored or deflated), read and written through Debian's libzip.
// Supported element types: <f4, <f8, |u1, |i1, <i4, <i8 and |b1 (little-endian; a big-endian or other type is refused
// with this list). Every error names the file (and for an .npz, the member).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "flowlab/tensor.hpp"

namespace flowlab::npy {

/// The element types read and written, as .npy 'descr' strings.
std::string supported_types();

/// The array in the bytes of one .npy file, as a C-contiguous CPU tensor of the file's type and shape. `where` names
/// it in errors (a path, or "archive.npz:member.npy"); `owner` is the plugin ("dataset/array").
Tensor parse(const std::string& owner, const std::string& where, const std::string& bytes);

/// The bytes of an .npy file (version 1.0, C order) holding `t` (float32, float64, uint8, int8, int32, int64, bool).
std::string serialize(const Tensor& t);

/// The array in the .npy file `path`.
Tensor read_npy(const std::string& owner, const std::string& path);

/// The names of the arrays in the .npz file `path` ("x" for the member "x.npy"), in archive order.
std::vector<std::string> npz_names(const std::string& owner, const std::string& path);

/// The array `name` (the member name.npy) of the .npz file `path`; a missing name lists the names there are.
Tensor read_npz(const std::string& owner, const std::string& path, const std::string& name);

/// Writes `arrays` (name, tensor) as the .npz file `path` (members stored uncompressed, like numpy.savez), replacing
/// any file of that name.
void write_npz(const std::string& owner, const std::string& path,
               const std::vector<std::pair<std::string, Tensor>>& arrays);

}  // namespace flowlab::npy
