// HDF5 writing through the C API: attributes, 1-D datasets, compound tables, and H5Ocopy for merging. Every handle
// lives in an H5Handle (released on every path); every failed call throws an Error carrying HDF5's own description.
// Files are built in memory and written by write_file (files.hpp): a full disk is a WriteError naming the file.
#include "flowlab/results.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <hdf5.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <utility>

#include "flowlab/files.hpp"
#include "flowlab/integrity.hpp"
#include "flowlab/version.hpp"
#include "flowlab/h5.hpp"

namespace fs = std::filesystem;

namespace flowlab {
namespace {

using h5::check;
using h5::fail;
using h5::H5Handle;
using h5::Silence;

H5Handle string_type(size_t size) {
  H5Handle t(H5Tcopy(H5T_C_S1), "copying the string type");
  check(H5Tset_size(t, size), "setting a string size");
  return t;
}

void attr_string(hid_t obj, const char* name, const std::string& value) {
  const H5Handle type = string_type(H5T_VARIABLE);
  check(H5Tset_cset(type, H5T_CSET_UTF8), "setting UTF-8");
  const H5Handle space(H5Screate(H5S_SCALAR), "a scalar dataspace");
  const H5Handle a(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT),
                   fmt::format("creating attribute {}", name));
  const char* p = value.c_str();
  check(H5Awrite(a, type, &p), fmt::format("writing attribute {}", name));
}

template <class T>
void attr_number(hid_t obj, const char* name, T value) {
  const hid_t type = std::is_integral<T>::value ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
  const H5Handle space(H5Screate(H5S_SCALAR), "a scalar dataspace");
  const H5Handle a(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT),
                   fmt::format("creating attribute {}", name));
  check(H5Awrite(a, type, &value), fmt::format("writing attribute {}", name));
}

/// A variable-length string attribute of `obj`; "" when absent and `required` is false.
std::string read_attr_string(hid_t obj, const char* name, bool required) {
  const htri_t exists = H5Aexists(obj, name);
  check(exists, fmt::format("looking for attribute {}", name));
  if (!exists) {
    if (required) throw Error(fmt::format("HDF5: attribute {} is missing", name));
    return "";
  }
  const H5Handle a(H5Aopen(obj, name, H5P_DEFAULT), fmt::format("opening attribute {}", name));
  const H5Handle type(H5Aget_type(a), fmt::format("the type of attribute {}", name));
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) <= 0)
    throw Error(fmt::format("HDF5: attribute {} is not a variable-length string", name));
  char* v = nullptr;
  check(H5Aread(a, type, &v), fmt::format("reading attribute {}", name));
  std::string out = v ? v : "";
  if (v) H5free_memory(v);
  return out;
}

template <class T>
void dataset_1d(hid_t group, const char* name, const std::vector<T>& values) {
  const hid_t type = std::is_integral<T>::value ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
  const hsize_t n = values.size();
  const H5Handle space(H5Screate_simple(1, &n, nullptr), fmt::format("the dataspace of {}", name));
  const H5Handle d(H5Dcreate2(group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                   fmt::format("creating dataset {}", name));
  if (n)
    check(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), fmt::format("writing dataset {}", name));
}

/// A float32 array of any rank (rank 0: a scalar dataset).
void dataset_array(hid_t group, const std::string& name, const Array& a) {
  const std::vector<hsize_t> dims(a.shape.begin(), a.shape.end());
  const H5Handle space(
      dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
      fmt::format("the dataspace of {}", name));
  const H5Handle d(H5Dcreate2(group, name.c_str(), H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                   fmt::format("creating dataset {}", name));
  if (!a.values.empty())
    check(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.values.data()),
          fmt::format("writing dataset {}", name));
}

/// A 1-D int64 attribute.
void attr_int_list(hid_t obj, const char* name, const std::vector<int64_t>& values) {
  const hsize_t n = values.size();
  const H5Handle space(n ? H5Screate_simple(1, &n, nullptr) : H5Screate(H5S_NULL), "an attribute dataspace");
  const H5Handle a(H5Acreate2(obj, name, H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT),
                   fmt::format("creating attribute {}", name));
  if (n) check(H5Awrite(a, H5T_NATIVE_INT64, values.data()), fmt::format("writing attribute {}", name));
}

H5Handle new_group(hid_t parent, const std::string& name) {
  return H5Handle(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "creating group " + name);
}

/// The name of the only link in `group` (a trial file holds one trial), read at its full length.
std::string only_link_name(hid_t group) {
  H5G_info_t info;
  check(H5Gget_info(group, &info), "reading /trials");
  if (info.nlinks != 1) throw Error(fmt::format("HDF5: /trials holds {} groups, a trial file holds one", info.nlinks));
  const ssize_t n = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, 0, nullptr, 0, H5P_DEFAULT);
  if (n < 0) fail("reading the trial's name");
  std::string name(static_cast<size_t>(n) + 1, '\0');
  if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, 0, name.data(), name.size(), H5P_DEFAULT) < 0)
    fail("reading the trial's name");
  name.resize(static_cast<size_t>(n));
  return name;
}

/// A compound table built column by column: int64, double and fixed-length string columns.
class Table {
 public:
  void int_column(const std::string& name) { add(name, H5Handle(H5Tcopy(H5T_NATIVE_INT64), "copying int64"), 8); }
  void double_column(const std::string& name) { add(name, H5Handle(H5Tcopy(H5T_NATIVE_DOUBLE), "copying double"), 8); }
  void string_column(const std::string& name, size_t width) {
    H5Handle t = string_type(width);
    check(H5Tset_strpad(t, H5T_STR_NULLTERM), "setting string padding");
    add(name, std::move(t), width);
  }
  void new_row() { data_.resize(data_.size() + row_size_, 0); }
  void set(size_t col, int64_t v) { std::memcpy(cell(col), &v, 8); }
  void set(size_t col, double v) { std::memcpy(cell(col), &v, 8); }
  void set(size_t col, const std::string& v) {
    std::memcpy(cell(col), v.data(), std::min(v.size(), cols_[col].size - 1));
  }
  void write(hid_t group, const char* name) const {
    const H5Handle type(H5Tcreate(H5T_COMPOUND, row_size_), fmt::format("the row type of {}", name));
    for (const auto& c : cols_)
      check(H5Tinsert(type, c.name.c_str(), c.offset, c.type), fmt::format("column {} of {}", c.name, name));
    const hsize_t n = data_.size() / row_size_;
    const H5Handle space(H5Screate_simple(1, &n, nullptr), fmt::format("the dataspace of {}", name));
    const H5Handle d(H5Dcreate2(group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     fmt::format("creating table {}", name));
    if (n) check(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data_.data()), fmt::format("writing table {}", name));
  }

 private:
  struct Column {
    std::string name;
    H5Handle type;
    size_t offset, size;
  };
  void add(const std::string& name, H5Handle type, size_t size) {
    cols_.push_back({name, std::move(type), row_size_, size});
    row_size_ += size;
  }
  char* cell(size_t col) { return data_.data() + data_.size() - row_size_ + cols_[col].offset; }
  std::vector<Column> cols_;
  size_t row_size_ = 0;
  std::vector<char> data_;
};

std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

/// A new HDF5 file built in memory (the core driver, no backing store): HDF5 never writes to the disk, so a full
/// disk cannot fail inside HDF5 (where H5Ocopy crashed on ENOSPC); `publish` writes the finished image through
/// write_file, which checks every write and reports ENOSPC or EIO naming the file.
class MemoryFile {
 public:
  explicit MemoryFile(const std::string& path) : path_(path) {
    const H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), "a file access property list");
    check(H5Pset_fapl_core(fapl, 1 << 20, 0), "selecting HDF5's in-memory driver");
    file_ = H5Handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl), "creating " + path + " in memory");
  }
  hid_t get() const { return file_; }
  operator hid_t() const { return file_; }  // NOLINT: used where the C API takes an hid_t
  /// Flushes, takes the image, closes, and writes it to the path durably with its checksum (write_checksummed:
  /// PATH.tmp, fsync, rename, then PATH.sha256).
  void publish() {
    check(H5Fflush(file_, H5F_SCOPE_LOCAL), "flushing " + path_);
    const ssize_t n = H5Fget_file_image(file_, nullptr, 0);
    if (n < 0) fail("the size of " + path_);
    std::string image(static_cast<size_t>(n), '\0');
    if (H5Fget_file_image(file_, image.data(), image.size()) != n) fail("the image of " + path_);
    file_.close("closing " + path_);
    write_checksummed(path_, image);  // with PATH.sha256 (integrity.hpp)
  }

 private:
  std::string path_;
  H5Handle file_;
};

/// The widest of `minimum` and each string + 1 (fixed-length string columns keep their terminating NUL).
size_t width_for(size_t minimum, const std::vector<std::string>& values) {
  size_t w = minimum;
  for (const auto& v : values) w = std::max(w, v.size() + 1);
  return w;
}

}  // namespace

namespace {

void write_eval_table(hid_t g, const TrialResult& r) {
  // The fixed columns of eval_columns() (records.hpp), then one per metric.
  Table eval;
  const auto& columns = eval_columns();
  for (const auto& c : columns) {
    if (const auto* text = std::get_if<std::string EvalRow::*>(&c.member)) {
      std::vector<std::string> values;
      for (const auto& row : r.eval) values.push_back(row.**text);
      eval.string_column(c.name, width_for(c.width, values));
    } else if (std::holds_alternative<double EvalRow::*>(c.member)) {
      eval.double_column(c.name);
    } else {
      eval.int_column(c.name);
    }
  }
  for (const auto& m : r.metric_names) eval.double_column(m);
  for (const auto& row : r.eval) {
    eval.new_row();
    for (size_t i = 0; i < columns.size(); ++i)
      std::visit([&](auto member) { eval.set(i, row.*member); }, columns[i].member);
    for (size_t i = 0; i < row.metrics.size(); ++i) eval.set(columns.size() + i, row.metrics[i]);
  }
  eval.write(g, "eval");
}

void write_samples_and_rows(hid_t g, const TrialResult& r) {
  // What a researcher needs to look again or compute their own numbers: the noise and reference samples, each
  // row's samples, states' times, mean speed and trajectories, and the evaluated weights.
  if (!r.x0.empty() || !r.reference.empty()) {
    const H5Handle samples = new_group(g, "samples");
    if (!r.x0.empty()) dataset_array(samples, "x0", r.x0);
    if (!r.reference.empty()) dataset_array(samples, "reference", r.reference);
  }
  if (!r.eval.empty()) {
    const H5Handle rows = new_group(g, "rows");
    for (size_t i = 0; i < r.eval.size(); ++i) {
      const EvalRow& row = r.eval[i];
      const H5Handle rg = new_group(rows, fmt::format("{:03d}", i));
      attr_number<int64_t>(rg, "row", static_cast<int64_t>(i));
      attr_number<int64_t>(rg, "round", row.round);
      attr_number<int64_t>(rg, "train_step", row.train_step);
      attr_string(rg, "solver", row.solver);
      attr_string(rg, "label", row.label);
      attr_number<int64_t>(rg, "steps", row.steps);
      attr_string(rg, "error", row.error);
      if (!row.samples.empty()) dataset_array(rg, "samples", row.samples);
      if (!row.times.empty()) dataset_1d(rg, "times", row.times);
      if (!row.mean_speed.empty()) dataset_1d(rg, "mean_speed", row.mean_speed);
      if (!row.trajectory.empty()) dataset_array(rg, "trajectory", row.trajectory);
    }
  }
}

void write_rounds(hid_t g, const TrialResult& r) {
  // The training stages (round 0, reflow rounds, distillation): what each cost, and the teacher pairs of each.
  if (!r.rounds.empty()) {
    std::vector<std::string> stages, teachers;
    for (const auto& s : r.rounds) stages.push_back(stage_name(s.stage)), teachers.push_back(s.teacher);
    Table rounds;
    rounds.int_column("round");
    rounds.string_column("stage", width_for(8, stages));
    rounds.double_column("mix");
    rounds.int_column("steps");
    rounds.double_column("train_seconds");
    rounds.int_column("pairs");
    rounds.string_column("teacher", width_for(16, teachers));
    rounds.int_column("teacher_nfe");
    rounds.double_column("pair_seconds");
    rounds.double_column("train_calls");
    for (const auto& s : r.rounds) {
      rounds.new_row();
      rounds.set(0, s.round), rounds.set(1, stage_name(s.stage)), rounds.set(2, s.mix), rounds.set(3, s.steps);
      rounds.set(4, s.train_seconds), rounds.set(5, s.pairs_x0.shape.empty() ? int64_t(0) : s.pairs_x0.shape[0]);
      rounds.set(6, s.teacher), rounds.set(7, s.teacher_nfe), rounds.set(8, s.pair_seconds),
          rounds.set(9, s.train_calls);
    }
    rounds.write(g, "rounds");
    bool any_pairs = false;
    for (const auto& s : r.rounds) any_pairs = any_pairs || !s.pairs_x0.empty();
    if (any_pairs) {
      const H5Handle pairs = new_group(g, "pairs");
      for (const auto& s : r.rounds) {
        if (s.pairs_x0.empty()) continue;
        const H5Handle pg = new_group(pairs, fmt::format("{:03d}", s.round));
        attr_number<int64_t>(pg, "round", s.round);
        attr_string(pg, "stage", stage_name(s.stage));
        attr_string(pg, "teacher", s.teacher);
        dataset_array(pg, "x0", s.pairs_x0);
        dataset_array(pg, "x1", s.pairs_x1);
      }
    }
  }
}

// The evaluated weights (flowlab sample, export) and the post-hoc EMA snapshots (flowlab ema).
void write_weights(hid_t g, const TrialResult& r) {
  if (!r.weights.empty()) {
    const H5Handle w = new_group(g, "weights");
    attr_string(w, "architecture", r.architecture);
    for (const auto& [key, value] : r.architecture_params) attr_string(w, ("param:" + key).c_str(), value);
    attr_int_list(w, "event_shape", r.event_shape);
    attr_string(w, "condition", r.condition);
    for (const auto& [key, value] : r.weights) dataset_array(w, key, value);
  }
  if (!r.phema.empty()) {  // flowlab ema reconstructs any EMA length from these
    const H5Handle ph = new_group(g, "phema");
    dataset_1d(ph, "steps", r.phema.steps);
    dataset_1d(ph, "stds", r.phema.stds);
    dataset_array(ph, "values", r.phema.values);
    attr_string(ph, "parameters", fmt::format("{}", fmt::join(r.phema.parameters, "\n")));
  }
}

}  // namespace

void write_trial_file(const std::string& path, const TrialConfig& trial, const TrialResult& r) {
  Silence s;
  if (fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path());
  MemoryFile f(path);
  {
    const H5Handle trials(H5Gcreate2(f, "trials", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "creating /trials");
    const H5Handle g(H5Gcreate2(trials, trial.id.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                     "creating group " + trial.id);
    attr_string(g, "config", trial.resolved_yaml);
    attr_string(g, "config_hash", config_hash(trial.resolved_yaml));
    attr_number<int64_t>(g, "seed", trial.seed);
    attr_string(g, "device", r.device);
    attr_string(g, "precision", r.precision);
    attr_string(g, "cuda_graph", r.cuda_graph);
    attr_string(g, "status", r.status);
    attr_string(g, "error", r.error);
    attr_number<int64_t>(g, "diverged_step", r.diverged_step);
    attr_number<double>(g, "train_seconds", r.train_seconds);
    attr_number<double>(g, "eval_seconds", r.eval_seconds);
    if (trial.eval.every > 0) attr_number<double>(g, "during_eval_seconds", r.during_seconds);
    for (const auto& [key, value] : trial.swept) attr_string(g, ("sweep:" + key).c_str(), value);
    {
      const H5Handle train(H5Gcreate2(g, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "creating train/");
      if (r.train.round.size() == r.train.step.size()) dataset_1d(train, "round", r.train.round);
      dataset_1d(train, "step", r.train.step);
      dataset_1d(train, "loss", r.train.loss);
      dataset_1d(train, "grad_norm", r.train.grad_norm);
      dataset_1d(train, "lr", r.train.lr);
    }
    attr_number<int64_t>(g, "failed_rows", r.failed_rows);
    attr_string(g, "reference_source", r.reference_source);
    attr_number<int64_t>(g, "reference_count", r.reference_count);
    for (size_t i = 0; i < r.metric_names.size() && i < r.metric_features.size(); ++i)
      attr_string(g, ("metric_features:" + r.metric_names[i]).c_str(), r.metric_features[i]);
    write_eval_table(g, r);
    write_samples_and_rows(g, r);
    write_rounds(g, r);
    write_weights(g, r);
  }
  f.publish();  // readers see the old file or the whole new one, also after a power loss
}

std::optional<TrialFileInfo> read_trial_file(const std::string& path) {
  Silence s;
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  try {
    const H5Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + path);
    const H5Handle trials(H5Gopen2(f, "trials", H5P_DEFAULT), "opening /trials");
    TrialFileInfo info;
    info.id = only_link_name(trials);
    const H5Handle g(H5Gopen2(trials, info.id.c_str(), H5P_DEFAULT), "opening the trial's group");
    info.status = read_attr_string(g, "status", true);
    info.error = read_attr_string(g, "error", false);
    info.config_hash = read_attr_string(g, "config_hash", false);
    return info;
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::optional<std::string> experiment_file_name(const std::string& path) {
  Silence s;
  try {
    if (H5Fis_hdf5(path.c_str()) <= 0) return std::nullopt;
    const H5Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + path);
    const std::string name = read_attr_string(f, "experiment_name", false);
    if (name.empty()) return std::nullopt;
    return name;
  } catch (const Error&) {
    return std::nullopt;
  }
}

std::optional<std::string> trial_file_status(const std::string& path) {
  const auto info = read_trial_file(path);
  if (!info) return std::nullopt;
  return info->status;
}

namespace {

// Which file holds which trial of `ex`: the id is the name of the file's only group, read from the file. Files of
// other experiments or configurations (stale: rerun by --resume) are left out; unreadable ones are `problems`.
std::map<std::string, std::string> trial_files_by_id(const Experiment& ex, const std::vector<std::string>& trial_files,
                                                     std::vector<MergeProblem>& problems) {
  std::map<std::string, const TrialConfig*> trial_of;
  for (const auto& t : ex.trials) trial_of[t.id] = &t;
  std::map<std::string, std::string> file_of;
  for (const auto& tf : trial_files) {
    try {
      const H5Handle src(H5Fopen(tf.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + tf);
      const H5Handle trials(H5Gopen2(src, "trials", H5P_DEFAULT), "opening /trials in " + tf);
      const std::string id = only_link_name(trials);
      const auto t = trial_of.find(id);
      if (t == trial_of.end()) continue;  // not a trial of this experiment
      const H5Handle g(H5Gopen2(trials, id.c_str(), H5P_DEFAULT), "opening the trial's group in " + tf);
      if (read_attr_string(g, "config_hash", false) != config_hash(t->second->resolved_yaml))
        continue;  // written for another configuration: stale, rerun by --resume
      file_of.emplace(id, tf);
    } catch (const Error& e) {
      problems.push_back({tf, "", e.what()});
    }
  }
  return file_of;
}

// The last logged training loss of the trial group `g` (NaN when none was logged).
double final_loss(hid_t g, const std::string& id) {
  const H5Handle loss(H5Dopen2(g, "train/loss", H5P_DEFAULT), "opening train/loss of " + id);
  const H5Handle space(H5Dget_space(loss), "the dataspace of train/loss");
  hsize_t n = 0;
  check(H5Sget_simple_extent_dims(space, &n, nullptr), "the size of train/loss");
  if (n > 0) {
    std::vector<double> v(n);
    check(H5Dread(loss, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "reading train/loss of " + id);
    return v.back();
  }
  return std::nan("");
}

// Metrics: the eval table's metric columns, read by name, of the final evaluation's round 0 rows (in run
// order; the rows evaluated during training, train_step below train.steps, are left out).
std::vector<double> summary_metrics(hid_t g, const TrialConfig& t, const TrialConfig& first, size_t columns) {
  std::vector<double> metrics(columns, std::nan(""));
  const H5Handle ev(H5Dopen2(g, "eval", H5P_DEFAULT), "opening eval of " + t.id);
  const H5Handle space(H5Dget_space(ev), "the dataspace of eval");
  hsize_t n = 0;
  check(H5Sget_simple_extent_dims(space, &n, nullptr), "the size of eval");
  auto int_column = [&](const char* name) {
    std::vector<int64_t> v(n, -1);
    const H5Handle type(H5Dget_type(ev), "the row type of eval");
    if (n == 0 || H5Tget_member_index(type, name) < 0) return v;
    const H5Handle mt(H5Tcreate(H5T_COMPOUND, sizeof(int64_t)), "an int column type");
    check(H5Tinsert(mt, name, 0, H5T_NATIVE_INT64), fmt::format("column {}", name));
    check(H5Dread(ev, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
          fmt::format("reading column {} of {}/eval", name, t.id));
    return v;
  };
  const std::vector<int64_t> round = int_column("round"), train_step = int_column("train_step");
  std::vector<size_t> final_rows;  // files without train_step: every row is final
  for (size_t i = 0; i < n; ++i)
    if (train_step[i] < 0 || (round[i] <= 0 && train_step[i] == t.train.steps)) final_rows.push_back(i);
  size_t k = 0;
  for (const auto& m : first.eval.metric_labels) {
    if (n > 0) {
      const H5Handle mt(H5Tcreate(H5T_COMPOUND, sizeof(double)), "a metric column type");
      check(H5Tinsert(mt, m.c_str(), 0, H5T_NATIVE_DOUBLE), "column " + m);
      std::vector<double> v(n);
      check(H5Dread(ev, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
            fmt::format("reading column {} of {}/eval", m, t.id));
      for (size_t i = 0; i < first.eval.runs.size() && i < final_rows.size(); ++i)
        metrics[k * first.eval.runs.size() + i] = v[final_rows[i]];
    }
    ++k;
  }
  return metrics;
}

}  // namespace

std::vector<MergeProblem> merge_experiment(const std::string& output, const Experiment& ex,
                                           const std::vector<std::string>& trial_files) {
  Silence s;
  std::vector<MergeProblem> problems;
  if (fs::path(output).has_parent_path()) fs::create_directories(fs::path(output).parent_path());
  const std::map<std::string, std::string> file_of = trial_files_by_id(ex, trial_files, problems);

  MemoryFile f(output);
  attr_string(f, "flowlab_version", FLOWLAB_VERSION);
  attr_string(f, "experiment_name", ex.name);
  attr_string(f, "experiment_file", ex.file);
  attr_string(f, "experiment_yaml", ex.text);
  attr_string(f, "created", now_iso());
  {
    const H5Handle trials(H5Gcreate2(f, "trials", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "creating /trials");

    // The summary: one row per trial in sweep order, swept values as strings, final loss, metrics per eval run.
    // String columns are as wide as their longest value (at least 256 for ids, 64 for swept values).
    std::vector<std::string> ids;
    for (const auto& t : ex.trials) ids.push_back(t.id);
    Table summary;
    summary.string_column("id", width_for(256, ids));
    summary.string_column("status", 16);
    summary.int_column("seed");
    const auto& first = ex.trials.front();
    for (size_t k = 0; k < first.swept.size(); ++k) {
      std::vector<std::string> values;
      for (const auto& t : ex.trials)
        if (k < t.swept.size()) values.push_back(t.swept[k].second);
      summary.string_column(first.swept[k].first, width_for(64, values));
    }
    summary.double_column("final_loss");
    std::vector<std::string> metric_cols;
    for (const auto& m : first.eval.metric_labels)
      for (const auto& run : first.eval.runs) {
        metric_cols.push_back(m + "@" + run.label);
        summary.double_column(metric_cols.back());
      }
    for (const auto& t : ex.trials) {
      const auto it = file_of.find(t.id);
      if (it == file_of.end()) continue;
      // Everything for this trial is read before its row is added, so a failure leaves no partial row; a partially
      // copied group is unlinked.
      bool copied = false;
      try {
        const H5Handle src(H5Fopen(it->second.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + it->second);
        check(H5Ocopy(src, ("trials/" + t.id).c_str(), trials, t.id.c_str(), H5P_DEFAULT, H5P_DEFAULT),
              "copying " + t.id);
        copied = true;
        // Values for the summary row, read back from the copied group.
        const H5Handle g(H5Gopen2(trials, t.id.c_str(), H5P_DEFAULT), "opening the copied group " + t.id);
        const std::string status = read_attr_string(g, "status", true);
        const double loss = final_loss(g, t.id);
        const std::vector<double> metrics = summary_metrics(g, t, first, metric_cols.size());
        summary.new_row();
        size_t col = 0;
        summary.set(col++, t.id);
        summary.set(col++, status);
        summary.set(col++, t.seed);
        for (const auto& kv : t.swept) summary.set(col++, kv.second);
        summary.set(col++, loss);
        for (double v : metrics) summary.set(col++, v);
      } catch (const Error& e) {
        problems.push_back({it->second, t.id, e.what()});
        if (copied || H5Lexists(trials, t.id.c_str(), H5P_DEFAULT) > 0) H5Ldelete(trials, t.id.c_str(), H5P_DEFAULT);
      }
    }
    summary.write(f, "summary");
  }
  f.publish();  // the good file is replaced only by a complete one, written and synced, with OUTPUT.sha256
  return problems;
}

}  // namespace flowlab
