// HDF5 writing through the C API: attributes, 1-D datasets, compound tables, and H5Ocopy for merging.
#include "flowlab/results.hpp"

#include <fmt/format.h>
#include <hdf5.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>

#include "flowlab/version.hpp"

namespace fs = std::filesystem;

namespace flowlab {
namespace {

void check(herr_t status, const std::string& what) {
  if (status < 0) throw Error(fmt::format("HDF5: {} failed", what));
}
hid_t checked(hid_t id, const std::string& what) {
  if (id < 0) throw Error(fmt::format("HDF5: {} failed", what));
  return id;
}

void attr_string(hid_t obj, const char* name, const std::string& value) {
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = checked(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), fmt::format("attribute {}", name));
  const char* p = value.c_str();
  check(H5Awrite(a, type, &p), fmt::format("writing attribute {}", name));
  H5Aclose(a), H5Sclose(space), H5Tclose(type);
}

template <class T>
void attr_number(hid_t obj, const char* name, T value) {
  const hid_t type = std::is_integral<T>::value ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = checked(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT), fmt::format("attribute {}", name));
  check(H5Awrite(a, type, &value), fmt::format("writing attribute {}", name));
  H5Aclose(a), H5Sclose(space);
}

template <class T>
void dataset_1d(hid_t group, const char* name, const std::vector<T>& values) {
  const hid_t type = std::is_integral<T>::value ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
  const hsize_t n = values.size();
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  const hid_t d = checked(H5Dcreate2(group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), name);
  if (n) check(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), name);
  H5Dclose(d), H5Sclose(space);
}

/// A compound table built column by column: int64, double and fixed-length string columns.
class Table {
 public:
  void int_column(const std::string& name) { add(name, H5Tcopy(H5T_NATIVE_INT64), 8); }
  void double_column(const std::string& name) { add(name, H5Tcopy(H5T_NATIVE_DOUBLE), 8); }
  void string_column(const std::string& name, size_t width) {
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, width);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    add(name, t, width);
  }
  void new_row() { data_.resize(data_.size() + row_size_, 0); }
  void set(size_t col, int64_t v) { std::memcpy(cell(col), &v, 8); }
  void set(size_t col, double v) { std::memcpy(cell(col), &v, 8); }
  void set(size_t col, const std::string& v) {
    std::memcpy(cell(col), v.data(), std::min(v.size(), cols_[col].size - 1));
  }
  void write(hid_t group, const char* name) {
    const hid_t type = H5Tcreate(H5T_COMPOUND, row_size_);
    for (const auto& c : cols_) H5Tinsert(type, c.name.c_str(), c.offset, c.type);
    const hsize_t n = data_.size() / row_size_;
    const hid_t space = H5Screate_simple(1, &n, nullptr);
    const hid_t d = checked(H5Dcreate2(group, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), name);
    if (n) check(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data_.data()), name);
    H5Dclose(d), H5Sclose(space), H5Tclose(type);
  }
  ~Table() {
    for (auto& c : cols_) H5Tclose(c.type);
  }

 private:
  struct Column {
    std::string name;
    hid_t type;
    size_t offset, size;
  };
  void add(const std::string& name, hid_t type, size_t size) {
    cols_.push_back({name, type, row_size_, size});
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

std::string run_label(const EvalRow& r) {
  return r.steps > 0 ? fmt::format("{}:steps={}", r.solver, r.steps) : fmt::format("{}:rtol={}", r.solver, r.rtol);
}

struct Silence {  // HDF5 prints its error stack by default; flowlab reports errors itself
  Silence() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};

}  // namespace

void write_trial_file(const std::string& path, const TrialConfig& trial, const TrialResult& r) {
  Silence s;
  fs::create_directories(fs::path(path).parent_path());
  const std::string tmp = path + ".tmp";
  const hid_t f = checked(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "creating " + tmp);
  const hid_t trials = H5Gcreate2(f, "trials", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const hid_t g = checked(H5Gcreate2(trials, trial.id.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group " + trial.id);
  attr_string(g, "config", trial.resolved_yaml);
  attr_number<int64_t>(g, "seed", trial.seed);
  attr_string(g, "device", r.device);
  attr_string(g, "status", r.status);
  attr_string(g, "error", r.error);
  attr_number<int64_t>(g, "diverged_step", r.diverged_step);
  attr_number<double>(g, "train_seconds", r.train_seconds);
  attr_number<double>(g, "eval_seconds", r.eval_seconds);
  for (const auto& [key, value] : trial.swept) attr_string(g, ("sweep:" + key).c_str(), value);
  const hid_t train = H5Gcreate2(g, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  dataset_1d(train, "step", r.train.step);
  dataset_1d(train, "loss", r.train.loss);
  dataset_1d(train, "grad_norm", r.train.grad_norm);
  dataset_1d(train, "lr", r.train.lr);
  H5Gclose(train);
  Table eval;
  eval.int_column("round");
  eval.string_column("solver", 32);
  eval.int_column("steps");
  eval.double_column("rtol");
  eval.double_column("atol");
  eval.int_column("nfe");
  eval.int_column("accepted_steps");
  eval.int_column("rejected_steps");
  eval.double_column("seconds");
  eval.double_column("samples_per_s");
  for (const auto& m : r.metric_names) eval.double_column(m);
  for (const auto& row : r.eval) {
    eval.new_row();
    eval.set(0, row.round), eval.set(1, row.solver), eval.set(2, row.steps), eval.set(3, row.rtol), eval.set(4, row.atol);
    eval.set(5, row.nfe), eval.set(6, row.accepted), eval.set(7, row.rejected), eval.set(8, row.seconds);
    eval.set(9, row.samples_per_s);
    for (size_t i = 0; i < row.metrics.size(); ++i) eval.set(10 + i, row.metrics[i]);
  }
  eval.write(g, "eval");
  H5Gclose(g), H5Gclose(trials);
  check(H5Fclose(f), "closing " + tmp);
  fs::rename(tmp, path);  // atomic on POSIX: readers see the old file or the whole new one
}

std::optional<std::string> trial_file_status(const std::string& path) {
  Silence s;
  if (!fs::exists(path)) return std::nullopt;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return std::nullopt;
  std::optional<std::string> status;
  const hid_t trials = H5Gopen2(f, "trials", H5P_DEFAULT);
  if (trials >= 0) {
    H5G_info_t info;
    if (H5Gget_info(trials, &info) >= 0 && info.nlinks == 1) {
      char name[1024];
      H5Lget_name_by_idx(trials, ".", H5_INDEX_NAME, H5_ITER_INC, 0, name, sizeof name, H5P_DEFAULT);
      const hid_t a = H5Aopen_by_name(trials, name, "status", H5P_DEFAULT, H5P_DEFAULT);
      if (a >= 0) {
        const hid_t type = H5Aget_type(a);
        char* value = nullptr;
        if (H5Aread(a, type, &value) >= 0 && value) status = std::string(value);
        if (value) H5free_memory(value);
        H5Tclose(type), H5Aclose(a);
      }
    }
    H5Gclose(trials);
  }
  H5Fclose(f);
  return status;
}

void merge_experiment(const std::string& output, const Experiment& ex, const std::vector<std::string>& trial_files) {
  Silence s;
  if (fs::path(output).has_parent_path()) fs::create_directories(fs::path(output).parent_path());
  const std::string tmp = output + ".tmp";
  const hid_t f = checked(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "creating " + tmp);
  attr_string(f, "flowlab_version", FLOWLAB_VERSION);
  attr_string(f, "experiment_name", ex.name);
  attr_string(f, "experiment_file", ex.file);
  attr_string(f, "experiment_yaml", ex.text);
  attr_string(f, "created", now_iso());
  const hid_t trials = H5Gcreate2(f, "trials", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  std::map<std::string, std::string> file_of;
  for (const auto& tf : trial_files) file_of[fs::path(tf).stem().string()] = tf;

  // The summary: one row per trial in sweep order, swept values as strings, final loss, metrics per eval run.
  Table summary;
  summary.string_column("id", 256);
  summary.string_column("status", 16);
  summary.int_column("seed");
  const auto& first = ex.trials.front();
  for (const auto& [key, v] : first.swept) summary.string_column(key, 64);
  summary.double_column("final_loss");
  std::vector<std::string> metric_cols;
  for (const auto& m : first.eval.metrics)
    for (const auto& run : first.eval.runs) {
      EvalRow row;
      row.solver = run.solver.name, row.steps = run.steps;
      row.rtol = run.solver.params.has("rtol") ? run.solver.params.real("rtol") : 0;
      metric_cols.push_back(m.name + "@" + run_label(row));
      summary.double_column(metric_cols.back());
    }
  for (const auto& t : ex.trials) {
    const auto it = file_of.find(t.id);
    if (it == file_of.end()) continue;
    const hid_t src = H5Fopen(it->second.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (src < 0) continue;  // unreadable: treated as not run
    check(H5Ocopy(src, ("trials/" + t.id).c_str(), trials, t.id.c_str(), H5P_DEFAULT, H5P_DEFAULT), "copying " + t.id);
    // Values for the summary row, read back from the copied group.
    const hid_t g = H5Gopen2(trials, t.id.c_str(), H5P_DEFAULT);
    auto read_string_attr = [&](const char* name) {
      std::string out;
      const hid_t a = H5Aopen(g, name, H5P_DEFAULT);
      if (a < 0) return out;
      const hid_t type = H5Aget_type(a);
      char* v = nullptr;
      if (H5Aread(a, type, &v) >= 0 && v) out = v;
      if (v) H5free_memory(v);
      H5Tclose(type), H5Aclose(a);
      return out;
    };
    summary.new_row();
    size_t col = 0;
    summary.set(col++, t.id);
    summary.set(col++, read_string_attr("status"));
    summary.set(col++, t.seed);
    for (const auto& kv : t.swept) summary.set(col++, kv.second);
    double final_loss = std::nan("");
    const hid_t loss = H5Dopen2(g, "train/loss", H5P_DEFAULT);
    if (loss >= 0) {
      const hid_t space = H5Dget_space(loss);
      hsize_t n = 0;
      H5Sget_simple_extent_dims(space, &n, nullptr);
      if (n > 0) {
        std::vector<double> v(n);
        H5Dread(loss, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
        final_loss = v.back();
      }
      H5Sclose(space), H5Dclose(loss);
    }
    summary.set(col++, final_loss);
    // metrics: read the eval table's metric columns by name
    std::vector<double> metrics(metric_cols.size(), std::nan(""));
    const hid_t ev = H5Dopen2(g, "eval", H5P_DEFAULT);
    if (ev >= 0) {
      const hid_t space = H5Dget_space(ev);
      hsize_t n = 0;
      H5Sget_simple_extent_dims(space, &n, nullptr);
      size_t k = 0;
      for (const auto& m : first.eval.metrics) {
        const hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(double));
        if (H5Tinsert(mt, m.name.c_str(), 0, H5T_NATIVE_DOUBLE) >= 0 && n > 0) {
          std::vector<double> v(n);
          if (H5Dread(ev, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0)
            for (size_t i = 0; i < first.eval.runs.size() && i < n; ++i) metrics[k * first.eval.runs.size() + i] = v[i];
        }
        H5Tclose(mt);
        ++k;
      }
      H5Sclose(space), H5Dclose(ev);
    }
    for (double v : metrics) summary.set(col++, v);
    H5Gclose(g);
    H5Fclose(src);
  }
  summary.write(f, "summary");
  H5Gclose(trials);
  check(H5Fclose(f), "closing " + tmp);
  fs::rename(tmp, output);
}

}  // namespace flowlab
