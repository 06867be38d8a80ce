// Checksums beside published files, their verification, setting damaged files aside, and the diagnosis of a damaged
// HDF5 file (see integrity.hpp).
#include "flowlab/integrity.hpp"

#include <fmt/format.h>
#include <hdf5.h>
#include <torch/serialize/input-archive.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "flowlab/files.hpp"
#include "flowlab/trial_files.hpp"
#include "flowlab/h5.hpp"

namespace fs = std::filesystem;

namespace flowlab {
namespace {

using h5::check;
using H5 = h5::H5Handle;

// SHA-256 through OpenSSL's EVP interface (libssl-dev), as `sha256sum` computes it.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) throw Error("OpenSSL: cannot start a SHA-256");
  }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const unsigned char* p, size_t n) {
    if (EVP_DigestUpdate(ctx_, p, n) != 1) throw Error("OpenSSL: SHA-256 update failed");
  }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_, digest, &len) != 1) throw Error("OpenSSL: SHA-256 final failed");
    std::string out;
    for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", digest[i]);
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// LibTorch's message up to its first line or sentence: 2.x appends advice to 1.13's ("... central directory. This
// is an internal miniz error. If you are seeing ..."), so both builds name the same cause in the same words.
std::string first_sentence(const std::string& m) { return m.substr(0, std::min(m.find('\n'), m.find(". "))); }

std::string name_of(const std::string& path) { return fs::path(path).filename().string(); }

/// The expected SHA-256 in `path`.sha256, "" when there is none; throws when it exists but cannot be read.
std::string stored_checksum(const std::string& path) {
  const std::string sum = checksum_path(path);
  std::error_code ec;
  if (!fs::exists(sum, ec)) return "";
  std::ifstream in(sum);
  std::string hex;
  if (!(in >> hex)) throw Error(fmt::format("cannot read the checksum {}", sum));
  return hex;
}

}  // namespace

std::string sha256_hex(const void* data, size_t n) {
  Sha256 s;
  s.update(static_cast<const unsigned char*>(data), n);
  return s.hex();
}

std::string sha256_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  Sha256 s;
  std::vector<unsigned char> buf(1 << 18);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) s.update(buf.data(), n);
  const bool bad = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (bad) throw Error(fmt::format("cannot read {}: {}", path, std::strerror(err)));
  return s.hex();
}

std::string checksum_path(const std::string& path) { return path + ".sha256"; }

void publish_checksummed(const std::string& tmp, const std::string& final_path) {
  // The checksum's temporary is the file's own temporary name (FILE.tmp), free again once the file is renamed: a
  // longer one (FILE.sha256.tmp) would not fit where the output's name is as long as flowlab allows.
  const std::string sum = checksum_path(final_path), sum_tmp = final_path + ".tmp";
  const std::string line = fmt::format("{}  {}\n", sha256_file(tmp), name_of(final_path));
  std::error_code ec;
  fs::remove(sum, ec);  // never a new file beside its old checksum, even after a crash right here
  if (ec) throw Error(fmt::format("cannot remove {}: {}", sum, ec.message()));
  durable_rename(tmp, final_path);
  {
    std::ofstream out(sum_tmp, std::ios::binary | std::ios::trunc);
    out << line;
    out.flush();
    if (!out) throw Error(fmt::format("cannot write {}: {}", sum_tmp, std::strerror(errno)));
  }
  durable_rename(sum_tmp, sum);
}

void write_checksummed(const std::string& path, const std::string& bytes) {
  const std::string sum = checksum_path(path);
  const std::string line = fmt::format("{}  {}\n", sha256_hex(bytes.data(), bytes.size()), name_of(path));
  std::error_code ec;
  fs::remove(sum, ec);  // never a new file beside its old checksum, even after a crash right here
  if (ec) throw Error(fmt::format("cannot remove {}: {}", sum, ec.message()));
  write_file(path, bytes);
  // The checksum's temporary is the file's own (PATH.tmp), free again once the file is renamed: a longer one
  // (PATH.sha256.tmp) would not fit where the output's name is as long as flowlab allows.
  write_file(sum, line, path + ".tmp");
}

void remove_checksummed(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
  fs::remove(checksum_path(path), ec);
}

std::string checksum_problem(const std::string& path) {
  const std::string expected = stored_checksum(path);
  if (expected.empty() || sha256_file(path) == expected) return "";
  return fmt::format("is corrupt: its content does not match its checksum in {}", name_of(checksum_path(path)));
}

std::string set_aside(const std::string& path) {
  std::error_code ec;
  for (int n = 1;; ++n) {
    const std::string to = fmt::format("{}.corrupt-{}", path, n);
    if (fs::exists(to, ec) || fs::exists(checksum_path(to), ec)) continue;
    if (std::rename(path.c_str(), to.c_str()) != 0)
      throw Error(fmt::format("cannot set {} aside as {}: {}", path, to, std::strerror(errno)));
    if (fs::exists(checksum_path(path), ec)) std::rename(checksum_path(path).c_str(), checksum_path(to).c_str());
    return to;
  }
}

std::string hdf5_byte_problem(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) return fmt::format("cannot be read: {}", ec ? ec.message() : std::strerror(errno));
  if (size == 0) return "is empty (0 bytes)";
  // The signature is at 0, 512, 1024, 2048, ... (after a user block).
  static const char kSig[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  for (uint64_t base = 0; base + 8 <= size; base = base ? base * 2 : 512) {
    unsigned char sb[96] = {};
    in.clear();
    in.seekg(std::streamoff(base));
    in.read(reinterpret_cast<char*>(sb), sizeof sb);
    if (std::memcmp(sb, kSig, 8) != 0) continue;
    const int version = sb[8];
    const size_t offsets = version >= 2 ? sb[9] : sb[13];
    const size_t at = (version >= 2 ? 12 : version == 1 ? 28 : 24) + 2 * offsets;  // base, (free space|ext), EOF
    if ((offsets != 4 && offsets != 8) || version > 3) return "looks corrupt: its HDF5 superblock is damaged";
    uint64_t eof = 0;
    for (size_t i = 0; i < offsets; ++i) eof |= uint64_t(sb[at + i]) << (8 * i);
    if (eof != ~uint64_t(0) >> (64 - 8 * offsets) && base + eof > size)
      return fmt::format("looks truncated: it has {} bytes, but its HDF5 superblock says the file ends at byte {}",
                         size, base + eof);
    return "";
  }
  return "is not an HDF5 file (no HDF5 signature)";
}

namespace {

/// Reads a dataset's or attribute's data in its own type (vlen strings freed again; other vlen data is skipped).
template <class Read>
void read_all(hid_t type, hssize_t points, const std::string& what, Read read) {
  if (points <= 0) return;
  if (H5Tis_variable_str(type) > 0) {
    std::vector<char*> v(size_t(points), nullptr);
    check(read(type, v.data()), "reading " + what);
    for (char* p : v)
      if (p) H5free_memory(p);
  } else if (H5Tdetect_class(type, H5T_VLEN) <= 0) {
    std::vector<unsigned char> buf(size_t(points) * H5Tget_size(type));
    check(read(type, buf.data()), "reading " + what);
  }
}

void read_attributes(hid_t obj, const std::string& where) {
  H5O_info_t info;
  check(H5Oget_info(obj, &info), "reading the object header of " + where);
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    const H5 a(H5Aopen_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_NATIVE, i, H5P_DEFAULT, H5P_DEFAULT),
               fmt::format("opening attribute {} of {}", i, where));
    const H5 type(H5Aget_type(a), "an attribute's type in " + where);
    const H5 space(H5Aget_space(a), "an attribute's dataspace in " + where);
    const std::string what = fmt::format("attribute {} of {}", i, where);
    read_all(type, H5Sget_simple_extent_npoints(space), what, [&](hid_t t, void* buf) { return H5Aread(a, t, buf); });
  }
}

/// Every object of an HDF5 file, with its attributes and its data, read once; throws h5's error where it fails.
void read_everything(hid_t file) {
  read_attributes(file, "/");
  struct Visit {
    std::string error;
  } visit;
  auto op = [](hid_t root, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    try {
      const H5 obj(H5Oopen(root, name, H5P_DEFAULT), fmt::format("opening {}", name));
      read_attributes(obj, name);
      if (info->type == H5O_TYPE_DATASET) {
        const H5 type(H5Dget_type(obj), fmt::format("the type of {}", name));
        const H5 space(H5Dget_space(obj), fmt::format("the dataspace of {}", name));
        read_all(type, H5Sget_simple_extent_npoints(space), name,
                 [&](hid_t t, void* buf) { return H5Dread(obj, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); });
      }
      return 0;
    } catch (const Error& e) {
      static_cast<Visit*>(data)->error = e.what();
      return -1;
    }
  };
  const herr_t st = H5Ovisit(file, H5_INDEX_NAME, H5_ITER_NATIVE, op, &visit);
  if (!visit.error.empty()) throw Error(visit.error);
  check(st, "walking through the file");
}

/// The name of the first link in `group`.
std::string first_link(hid_t group) {
  const ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, 0, nullptr, 0, H5P_DEFAULT);
  if (n < 0) h5::fail("reading a group's first name");
  std::string name(size_t(n) + 1, '\0');
  if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, 0, name.data(), name.size(), H5P_DEFAULT) < 0)
    h5::fail("reading a group's first name");
  name.resize(size_t(n));
  return name;
}

/// "" when an HDF5 file reads in full and has flowlab's attributes for its kind.
std::string hdf5_content_problem(const std::string& path, FileKind kind) {
  h5::Silence s;
  try {
    const H5 f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + path);
    read_everything(f);
    if (kind == FileKind::experiment && H5Aexists(f, "experiment_name") <= 0)
      return "is not a flowlab results file (no experiment_name attribute)";
    if (H5Lexists(f, "trials", H5P_DEFAULT) <= 0)
      return fmt::format("is not a flowlab {} file (no /trials group)", kind == FileKind::trial ? "trial" : "results");
    if (kind == FileKind::trial) {
      const H5 trials(H5Gopen2(f, "trials", H5P_DEFAULT), "opening /trials");
      H5G_info_t info;
      check(H5Gget_info(trials, &info), "reading /trials");
      if (info.nlinks != 1) return fmt::format("is not a flowlab trial file (/trials holds {} groups)", info.nlinks);
      if (H5Aexists_by_name(trials, first_link(trials).c_str(), "status", H5P_DEFAULT) <= 0)
        return "is not a flowlab trial file (its trial has no status)";
    }
    return "";
  } catch (const Error& e) {
    return fmt::format("looks corrupt: {}", e.what());
  }
}

}  // namespace

namespace {

/// "" when LibTorch reads the checkpoint: its archive opens and holds the step to resume from.
std::string checkpoint_content_problem(const std::string& path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    at::Tensor next;
    archive.read("next_step", next);
    return "";
  } catch (const c10::Error& e) {
    return "is corrupt: LibTorch cannot read it: " + first_sentence(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return "is corrupt: LibTorch cannot read it: " + first_sentence(e.what());
  }
}

}  // namespace

std::string file_problem(const std::string& path, FileKind kind) {
  try {
    if (kind == FileKind::checkpoint) {
      std::error_code ec;
      const auto size = fs::file_size(path, ec);
      if (ec) return fmt::format("cannot be read: {}", ec.message());
      if (size == 0) return "is empty (0 bytes)";
    } else if (std::string p = hdf5_byte_problem(path); !p.empty()) {
      return p;
    }
    if (std::string p = checksum_problem(path); !p.empty()) return p;
    // A checkpoint that matches its checksum is what save_checkpoint wrote: loading it again (in the runner, before
    // every resume) would only cost time. One without (older, or a crash before its checksum) is loaded.
    std::error_code ec;
    if (kind == FileKind::checkpoint)
      return fs::exists(checksum_path(path), ec) ? "" : checkpoint_content_problem(path);
    return hdf5_content_problem(path, kind);
  } catch (const Error& e) {
    return fmt::format("cannot be checked: {}", e.what());
  }
}

namespace {

bool ends_with(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

/// The trial ids by the stem of their files' names, from the experiment file's /trials (when it can be read).
std::map<std::string, std::string> ids_by_stem(const std::string& results) {
  std::map<std::string, std::string> ids;
  h5::Silence s;
  try {
    const H5 f(H5Fopen(results.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + results);
    const H5 trials(H5Gopen2(f, "trials", H5P_DEFAULT), "opening /trials");
    H5G_info_t info;
    check(H5Gget_info(trials, &info), "reading /trials");
    for (hsize_t i = 0; i < info.nlinks; ++i) {
      const ssize_t n = H5Lget_name_by_idx(trials, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
      if (n < 0) continue;
      std::string name(size_t(n) + 1, '\0');
      H5Lget_name_by_idx(trials, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT);
      name.resize(size_t(n));
      ids[trial_file_stem(name)] = name;
    }
  } catch (const Error&) {
  }
  return ids;
}

/// The stem of a trial file's or checkpoint's name: NAME.h5 -> NAME, NAME.<16 hex>.ckpt -> NAME.
std::string stem_of(const std::string& name) {
  if (ends_with(name, ".h5")) return name.substr(0, name.size() - 3);
  if (ends_with(name, ".ckpt") && name.size() > 5 + 17) return name.substr(0, name.size() - 5 - 17);
  return name;
}

/// The id of the trial whose files have the stem `stem`: from the experiment file, else from the trial's snapshot
/// (STEM.trial.yaml, written by the runner when it starts the trial); "" when neither says.
std::string trial_id_of(const std::string& dir, const std::string& stem,
                        const std::map<std::string, std::string>& ids) {
  if (const auto it = ids.find(stem); it != ids.end()) return it->second;
  try {
    const YAML::Node snapshot = YAML::LoadFile((fs::path(dir) / (stem + ".trial.yaml")).string());
    if (snapshot.IsMap() && snapshot["id"]) return snapshot["id"].as<std::string>();
  } catch (const std::exception&) {
  }
  return "";
}

}  // namespace

std::vector<VerifyProblem> verify_results(const std::string& results, size_t* checked) {
  std::vector<VerifyProblem> problems;
  if (std::string p = file_problem(results, FileKind::experiment); !p.empty()) problems.push_back({results, "", p});
  const auto ids = ids_by_stem(results);
  const std::string dir = trial_dir(results);
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if ((ends_with(name, ".h5") || ends_with(name, ".ckpt")) && it->is_regular_file(ec)) files.push_back(name);
  }
  std::sort(files.begin(), files.end());
  for (const auto& name : files) {
    const std::string path = (fs::path(dir) / name).string();
    const std::string p = file_problem(path, ends_with(name, ".h5") ? FileKind::trial : FileKind::checkpoint);
    if (!p.empty()) problems.push_back({path, trial_id_of(dir, stem_of(name), ids), p});
  }
  if (checked) *checked = 1 + files.size();
  return problems;
}

std::string explain_file_error(const std::string& path, const std::string& message) {
  std::string p = hdf5_byte_problem(path);
  if (p == "is not an HDF5 file (no HDF5 signature)")
    return fmt::format("{} {}: it is not a flowlab results file", path, p);
  if (p.rfind("cannot be read", 0) == 0) return message;
  try {
    if (p.empty()) p = checksum_problem(path);
  } catch (const Error&) {
  }
  // An HDF5 error that may be another file's (an output being written): the file's own problem, if it has one.
  if (p.empty() && message.rfind("HDF5: ", 0) == 0) p = hdf5_content_problem(path, FileKind::experiment);
  if (p.empty()) return message;
  return fmt::format("{} {}; check it with: flowlab verify {}", path, p, path);
}

}  // namespace flowlab
