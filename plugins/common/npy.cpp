// NumPy .npy parsing and writing by the format's specification, and .npz archives through libzip (see npy.hpp).
#include "npy.hpp"

#include <fmt/format.h>
#include <zip.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>

#include "flowlab/errors.hpp"

namespace flowlab::npy {
namespace {

struct TypeInfo {
  const char* descr;
  at::ScalarType type;
};
constexpr TypeInfo kTypes[] = {{"<f4", at::kFloat}, {"<f8", at::kDouble}, {"|u1", at::kByte}, {"|i1", at::kChar},
                               {"<i4", at::kInt},   {"<i8", at::kLong},   {"|b1", at::kBool}};

[[noreturn]] void fail(const std::string& owner, const std::string& where, const std::string& what) {
  throw Error(fmt::format("{}: '{}': {}", owner, where, what));
}

/// A cursor over the header's Python dict literal.
struct Literal {
  const std::string& s;
  size_t i = 0;
  void space() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool eat(char c) {
    space();
    if (i < s.size() && s[i] == c) return ++i, true;
    return false;
  }
  bool quoted(std::string& out) {
    space();
    if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) return false;
    const char q = s[i++];
    const size_t end = s.find(q, i);
    if (end == std::string::npos) return false;
    out = s.substr(i, end - i);
    i = end + 1;
    return true;
  }
  bool word(std::string& out) {
    space();
    const size_t start = i;
    while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
    out = s.substr(start, i - start);
    return !out.empty();
  }
};

}  // namespace

std::string supported_types() {
  std::string out;
  for (const auto& t : kTypes) out += (out.empty() ? "" : ", ") + std::string(t.descr);
  return out;
}

Tensor parse(const std::string& owner, const std::string& where, const std::string& bytes) {
  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0)
    fail(owner, where,
         bytes.size() < 10 &&
                 bytes.compare(0, std::min<size_t>(bytes.size(), 6), kMagic, std::min<size_t>(bytes.size(), 6)) == 0
             ? fmt::format("truncated: {} bytes, shorter than an .npy header", bytes.size())
             : "not an .npy file (no \\x93NUMPY magic at its start)");
  const auto u8 = [&](size_t k) { return static_cast<uint64_t>(static_cast<unsigned char>(bytes[k])); };
  const int major = static_cast<int>(u8(6));
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = u8(8) | u8(9) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      fail(owner, where, fmt::format("truncated: {} bytes, shorter than an .npy header", bytes.size()));
    header_len = u8(8) | u8(9) << 8 | u8(10) << 16 | u8(11) << 24;
    offset = 12;
  } else {
    fail(owner, where, fmt::format(".npy format version {}.{} is not supported (1.0, 2.0 and 3.0 are)", major, u8(7)));
  }
  if (bytes.size() < offset + header_len)
    fail(owner, where,
         fmt::format("truncated: the header needs {} bytes, the file has {}", offset + header_len, bytes.size()));
  const std::string header = bytes.substr(offset, header_len);
  Literal p{header};
  std::string descr;
  bool fortran = false, have_descr = false, have_order = false, have_shape = false;
  std::vector<int64_t> shape;
  const auto bad_header = [&](const std::string& why) {
    fail(owner, where, fmt::format("malformed .npy header ({}): {}", why, header));
  };
  if (!p.eat('{')) bad_header("no '{'");
  while (!p.eat('}')) {
    std::string key;
    if (!p.quoted(key)) bad_header("expected a quoted key");
    if (!p.eat(':')) bad_header("expected ':' after '" + key + "'");
    if (key == "descr") {
      if (!p.quoted(descr)) bad_header("'descr' is not a string (structured types are not supported)");
      have_descr = true;
    } else if (key == "fortran_order") {
      std::string w;
      if (!p.word(w) || (w != "True" && w != "False")) bad_header("'fortran_order' is not True or False");
      fortran = w == "True";
      have_order = true;
    } else if (key == "shape") {
      if (!p.eat('(')) bad_header("'shape' is not a tuple");
      while (!p.eat(')')) {
        std::string w;
        if (!p.word(w) || w.find_first_not_of("0123456789") != std::string::npos || w.size() > 18)
          bad_header("'shape' holds something other than sizes");
        shape.push_back(std::stoll(w));
        p.eat(',');
      }
      have_shape = true;
    } else {
      bad_header("unknown key '" + key + "'");
    }
    p.eat(',');
  }
  if (!have_descr || !have_order || !have_shape) bad_header("it needs 'descr', 'fortran_order' and 'shape'");
  // '<u1' and '=u1' mean the same bytes as '|u1' (numpy writes '|' for one-byte types).
  if (descr.size() == 3 && (descr[0] == '<' || descr[0] == '=') && descr[2] == '1') descr[0] = '|';
  const TypeInfo* type = nullptr;
  for (const auto& t : kTypes)
    if (descr == t.descr) type = &t;
  if (!type) fail(owner, where, fmt::format("element type '{}' is not supported; valid: {}", descr, supported_types()));
  const int64_t item = static_cast<int64_t>(c10::elementSize(type->type));
  int64_t numel = 1;
  for (const int64_t s : shape) {
    if (s != 0 && numel > std::numeric_limits<int64_t>::max() / item / s) fail(owner, where, "shape too large");
    numel *= s;
  }
  const size_t data_bytes = static_cast<size_t>(numel * item), have = bytes.size() - offset - header_len;
  if (have < data_bytes)
    fail(owner, where,
         fmt::format("truncated: shape {} of {} needs {} bytes of data, the file has {}", fmt::join(shape, "x"), descr,
                     data_bytes, have));
  std::vector<int64_t> stored(shape);
  if (fortran) std::reverse(stored.begin(), stored.end());
  Tensor t = at::empty(stored, at::TensorOptions().dtype(type->type));
  if (data_bytes) std::memcpy(t.data_ptr(), bytes.data() + offset + header_len, data_bytes);
  if (type->type == at::kBool && data_bytes && (t.view(at::kByte) > 1).any().item<bool>())
    fail(owner, where, "a |b1 (bool) array holds bytes other than 0 and 1");
  if (fortran) {
    std::vector<int64_t> order(shape.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = static_cast<int64_t>(order.size() - 1 - k);
    t = t.permute(order).contiguous();
  }
  return t;
}

std::string serialize(const Tensor& tensor) {
  const Tensor t = tensor.to(at::kCPU).contiguous();
  const TypeInfo* type = nullptr;
  for (const auto& k : kTypes)
    if (k.type == t.scalar_type()) type = &k;
  if (!type) throw Error(fmt::format("npy: cannot write tensors of type {}", c10::toString(t.scalar_type())));
  std::string shape;
  for (const int64_t s : t.sizes()) shape += std::to_string(s) + ", ";
  if (t.dim() > 1) shape.resize(shape.size() - 2);  // (3, 4); a 1-D shape keeps its comma: (3,)
  if (t.dim() == 1) shape.resize(shape.size() - 1);
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", type->descr, shape);
  // pad with spaces so that the data starts at a multiple of 64 bytes; the header ends in '\n'
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return out;
}

Tensor read_npy(const std::string& owner, const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) fail(owner, path, fmt::format("cannot be opened ({})", std::strerror(errno)));
  const std::streamoff size = f.tellg();
  if (size < 0) fail(owner, path, "cannot be read (no size)");
  std::string bytes(static_cast<size_t>(size), '\0');
  f.seekg(0);
  if (!f.read(bytes.data(), size)) fail(owner, path, fmt::format("read error ({})", std::strerror(errno)));
  return parse(owner, path, bytes);
}

namespace {

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
using Zip = std::unique_ptr<zip_t, ZipCloser>;

Zip open_zip(const std::string& owner, const std::string& path) {
  int code = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
  if (!z) {
    zip_error_t e;
    zip_error_init_with_code(&e, code);
    const std::string why = zip_error_strerror(&e);
    zip_error_fini(&e);
    fail(owner, path, fmt::format("cannot be read as an .npz (zip) archive: {}", why));
  }
  return Zip(z);
}

}  // namespace

std::vector<std::string> npz_names(const std::string& owner, const std::string& path) {
  const Zip z = open_zip(owner, path);
  std::vector<std::string> names;
  const zip_int64_t n = zip_get_num_entries(z.get(), 0);
  for (zip_int64_t k = 0; k < n; ++k) {
    const char* name = zip_get_name(z.get(), static_cast<zip_uint64_t>(k), 0);
    if (!name) continue;
    std::string s(name);
    if (s.size() > 4 && s.compare(s.size() - 4, 4, ".npy") == 0) names.push_back(s.substr(0, s.size() - 4));
  }
  return names;
}

Tensor read_npz(const std::string& owner, const std::string& path, const std::string& name) {
  const Zip z = open_zip(owner, path);
  const std::string member = name + ".npy";
  const zip_int64_t index = zip_name_locate(z.get(), member.c_str(), 0);
  if (index < 0) {
    std::string have;
    for (const auto& n : npz_names(owner, path)) have += (have.empty() ? "'" : ", '") + n + "'";
    fail(owner, path, fmt::format("has no array '{}' (it holds {})", name, have.empty() ? "no arrays" : have));
  }
  const std::string where = path + ":" + member;
  zip_stat_t st;
  if (zip_stat_index(z.get(), static_cast<zip_uint64_t>(index), 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
    fail(owner, where, fmt::format("cannot be read: {}", zip_strerror(z.get())));
  zip_file_t* f = zip_fopen_index(z.get(), static_cast<zip_uint64_t>(index), 0);
  if (!f) fail(owner, where, fmt::format("cannot be read: {}", zip_strerror(z.get())));
  std::string bytes(static_cast<size_t>(st.size), '\0');
  zip_uint64_t got = 0;
  while (got < st.size) {
    const zip_int64_t r = zip_fread(f, bytes.data() + got, st.size - got);
    if (r < 0) {
      const std::string why = zip_file_strerror(f);
      zip_fclose(f);
      fail(owner, where, fmt::format("corrupt member: {}", why));
    }
    if (r == 0) break;
    got += static_cast<zip_uint64_t>(r);
  }
  const int closed = zip_fclose(f);
  if (got != st.size) fail(owner, where, fmt::format("truncated: {} of its {} bytes could be read", got, st.size));
  if (closed != 0) {
    zip_error_t e;
    zip_error_init_with_code(&e, closed);
    const std::string why = zip_error_strerror(&e);
    zip_error_fini(&e);
    fail(owner, where, fmt::format("corrupt member: {}", why));
  }
  return parse(owner, where, bytes);
}

void write_npz(const std::string& owner, const std::string& path,
               const std::vector<std::pair<std::string, Tensor>>& arrays) {
  int code = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (!z) {
    zip_error_t e;
    zip_error_init_with_code(&e, code);
    const std::string why = zip_error_strerror(&e);
    zip_error_fini(&e);
    fail(owner, path, fmt::format("cannot be written: {}", why));
  }
  std::vector<std::string> blobs;  // libzip reads the buffers at zip_close
  blobs.reserve(arrays.size());
  for (const auto& [name, t] : arrays) {
    blobs.push_back(serialize(t));
    zip_source_t* src = zip_source_buffer(z, blobs.back().data(), blobs.back().size(), 0);
    const zip_int64_t index = src ? zip_file_add(z, (name + ".npy").c_str(), src, ZIP_FL_OVERWRITE) : -1;
    if (index < 0) {
      if (src) zip_source_free(src);
      const std::string why = zip_strerror(z);
      zip_discard(z);
      fail(owner, path, fmt::format("cannot be written: {}", why));
    }
    zip_set_file_compression(z, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0);
  }
  if (zip_close(z) != 0) {
    const std::string why = zip_strerror(z);
    zip_discard(z);
    fail(owner, path, fmt::format("cannot be written: {}", why));
  }
}

}  // namespace flowlab::npy
