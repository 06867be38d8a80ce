// HDF5 readers for the tests that check results files: an attribute as text, a column of a compound table.
#pragma once

#include <catch2/catch_test_macros.hpp>
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace flowlab::test {

/// An attribute of `group` in `file` as text (strings as they are, integers in decimal).
inline std::string attr(const std::string& file, const std::string& group, const char* name) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t a = H5Aopen_by_name(f, group.c_str(), name, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(a >= 0);
  const hid_t type = H5Aget_type(a);
  std::string out;
  if (H5Tget_class(type) == H5T_STRING) {
    char* v = nullptr;
    H5Aread(a, type, &v);
    out = v ? v : "";
    H5free_memory(v);
  } else {
    int64_t v = 0;
    H5Aread(a, H5T_NATIVE_INT64, &v);
    out = std::to_string(v);
  }
  H5Tclose(type), H5Aclose(a), H5Fclose(f);
  return out;
}

/// One numeric column `name` of the compound table `dataset`, as double.
inline std::vector<double> table_column(const std::string& file, const std::string& dataset, const std::string& name) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  REQUIRE(d >= 0);
  const hid_t s = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(s, &n, nullptr);
  const hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(double));
  H5Tinsert(t, name.c_str(), 0, H5T_NATIVE_DOUBLE);
  std::vector<double> v(n);
  CHECK(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0);
  H5Tclose(t), H5Sclose(s), H5Dclose(d), H5Fclose(f);
  return v;
}

}  // namespace flowlab::test
