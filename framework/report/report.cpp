// Reading results files back through the HDF5 C API (columns of the eval table by name, so files with other or
// fewer metric columns read the same) and the quality-vs-steps report built from them.
#include "flowlab/report.hpp"

#include <fmt/format.h>
#include <hdf5.h>
#include <sstream>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <utility>

#include "flowlab/config.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/h5.hpp"

namespace fs = std::filesystem;

namespace flowlab {
namespace {

using h5::check;
using h5::fail;
using h5::Silence;
using H5 = h5::H5Handle;

bool has_attr(hid_t obj, const char* name) {
  const htri_t e = H5Aexists(obj, name);
  check(e, fmt::format("looking for attribute {}", name));
  return e > 0;
}

/// A string attribute (variable or fixed length); "" when absent.
std::string attr_string(hid_t obj, const char* name) {
  if (!has_attr(obj, name)) return "";
  const H5 a(H5Aopen(obj, name, H5P_DEFAULT), fmt::format("opening attribute {}", name));
  const H5 type(H5Aget_type(a), fmt::format("the type of attribute {}", name));
  if (H5Tget_class(type) != H5T_STRING) throw Error(fmt::format("attribute {} is not a string", name));
  if (H5Tis_variable_str(type) > 0) {
    char* v = nullptr;
    check(H5Aread(a, type, &v), fmt::format("reading attribute {}", name));
    std::string out = v ? v : "";
    if (v) H5free_memory(v);
    return out;
  }
  std::string buf(H5Tget_size(type), '\0');
  check(H5Aread(a, type, buf.data()), fmt::format("reading attribute {}", name));
  return buf.substr(0, buf.find('\0'));
}

double attr_double(hid_t obj, const char* name, double fallback) {
  if (!has_attr(obj, name)) return fallback;
  const H5 a(H5Aopen(obj, name, H5P_DEFAULT), fmt::format("opening attribute {}", name));
  double v = fallback;
  check(H5Aread(a, H5T_NATIVE_DOUBLE, &v), fmt::format("reading attribute {}", name));
  return v;
}

std::vector<int64_t> attr_int_list(hid_t obj, const char* name) {
  if (!has_attr(obj, name)) return {};
  const H5 a(H5Aopen(obj, name, H5P_DEFAULT), fmt::format("opening attribute {}", name));
  const H5 space(H5Aget_space(a), "an attribute's dataspace");
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<int64_t> v(static_cast<size_t>(std::max<hssize_t>(0, n)));
  if (!v.empty()) check(H5Aread(a, H5T_NATIVE_INT64, v.data()), fmt::format("reading attribute {}", name));
  return v;
}

std::vector<std::string> attr_names(hid_t obj) {
  std::vector<std::string> names;
  auto cb = [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->push_back(name);
    return 0;
  };
  hsize_t idx = 0;
  check(H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, cb, &names), "listing attributes");
  return names;
}

std::vector<std::string> link_names(hid_t group) {
  std::vector<std::string> names;
  auto cb = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->push_back(name);
    return 0;
  };
  hsize_t idx = 0;
  check(H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &idx, cb, &names), "listing a group");
  return names;
}

template <class T>
std::vector<T> read_1d(hid_t loc, const char* name) {
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return {};
  const H5 d(H5Dopen2(loc, name, H5P_DEFAULT), fmt::format("opening {}", name));
  const H5 space(H5Dget_space(d), fmt::format("the dataspace of {}", name));
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<T> v(static_cast<size_t>(std::max<hssize_t>(0, n)));
  const hid_t type = std::is_integral<T>::value ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
  if (!v.empty()) check(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), fmt::format("reading {}", name));
  return v;
}

/// The columns of a compound table, read by name.
class CompoundReader {
 public:
  CompoundReader(hid_t loc, const char* name) : d_(H5Dopen2(loc, name, H5P_DEFAULT), fmt::format("opening {}", name)) {
    const H5 space(H5Dget_space(d_), "a table's dataspace");
    n_ = static_cast<size_t>(std::max<hssize_t>(0, H5Sget_simple_extent_npoints(space)));
    type_ = H5Dget_type(d_);
    const int m = H5Tget_nmembers(type_);
    for (int i = 0; i < m; ++i) {
      char* nm = H5Tget_member_name(type_, static_cast<unsigned>(i));
      names_.push_back(nm);
      H5free_memory(nm);
    }
  }
  ~CompoundReader() {
    if (type_ >= 0) H5Tclose(type_);
  }
  size_t rows() const { return n_; }
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& col) const { return std::find(names_.begin(), names_.end(), col) != names_.end(); }
  /// Numeric column as double (missing: `fallback`).
  std::vector<double> doubles(const std::string& col, double fallback = std::nan("")) const {
    std::vector<double> v(n_, fallback);
    if (!has(col) || n_ == 0) return v;
    const H5 mt(H5Tcreate(H5T_COMPOUND, sizeof(double)), "a column type");
    check(H5Tinsert(mt, col.c_str(), 0, H5T_NATIVE_DOUBLE), "column " + col);
    check(H5Dread(d_, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "reading column " + col);
    return v;
  }
  std::vector<int64_t> ints(const std::string& col) const {
    std::vector<int64_t> v(n_, 0);
    if (!has(col) || n_ == 0) return v;
    const H5 mt(H5Tcreate(H5T_COMPOUND, sizeof(int64_t)), "a column type");
    check(H5Tinsert(mt, col.c_str(), 0, H5T_NATIVE_INT64), "column " + col);
    check(H5Dread(d_, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "reading column " + col);
    return v;
  }
  std::vector<std::string> strings(const std::string& col) const {
    std::vector<std::string> v(n_);
    if (!has(col) || n_ == 0) return v;
    const int idx = H5Tget_member_index(type_, col.c_str());
    const H5 ft(H5Tget_member_type(type_, static_cast<unsigned>(idx)), "a column's type");
    if (H5Tget_class(ft) != H5T_STRING) throw Error(fmt::format("column {} is not a string column", col));
    if (H5Tis_variable_str(ft) > 0) {
      const H5 st(H5Tcopy(H5T_C_S1), "a string type");
      check(H5Tset_size(st, H5T_VARIABLE), "a string size");
      const H5 mt(H5Tcreate(H5T_COMPOUND, sizeof(char*)), "a column type");
      check(H5Tinsert(mt, col.c_str(), 0, st), "column " + col);
      std::vector<char*> p(n_, nullptr);
      check(H5Dread(d_, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data()), "reading column " + col);
      for (size_t i = 0; i < n_; ++i) {
        v[i] = p[i] ? p[i] : "";
        if (p[i]) H5free_memory(p[i]);
      }
      return v;
    }
    const size_t w = H5Tget_size(ft);
    const H5 st(H5Tcopy(H5T_C_S1), "a string type");
    check(H5Tset_size(st, w), "a string size");
    const H5 mt(H5Tcreate(H5T_COMPOUND, w), "a column type");
    check(H5Tinsert(mt, col.c_str(), 0, st), "column " + col);
    std::vector<char> buf(w * n_);
    check(H5Dread(d_, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), "reading column " + col);
    for (size_t i = 0; i < n_; ++i) {
      std::string s(buf.data() + i * w, w);
      v[i] = s.substr(0, s.find('\0'));
    }
    return v;
  }

 private:
  H5 d_;
  hid_t type_ = -1;
  size_t n_ = 0;
  std::vector<std::string> names_;
};

// The eval table's fixed columns; every other double column is a metric.

StoredTrial read_trial(hid_t trials, const std::string& id) {
  const H5 g(H5Gopen2(trials, id.c_str(), H5P_DEFAULT), "opening trial " + id);
  StoredTrial t;
  t.id = id;
  t.status = attr_string(g, "status");
  t.error = attr_string(g, "error");
  t.seed = static_cast<int64_t>(attr_double(g, "seed", 0));
  for (const auto& a : attr_names(g))
    if (a.rfind("sweep:", 0) == 0) t.swept.emplace_back(a.substr(6), attr_string(g, a.c_str()));
  if (H5Lexists(g, "train", H5P_DEFAULT) > 0) {
    const H5 tr(H5Gopen2(g, "train", H5P_DEFAULT), "opening train/ of " + id);
    t.train.round = read_1d<int64_t>(tr, "round");
    t.train.step = read_1d<int64_t>(tr, "step");
    t.train.loss = read_1d<double>(tr, "loss");
    t.train.grad_norm = read_1d<double>(tr, "grad_norm");
    t.train.lr = read_1d<double>(tr, "lr");
  }
  if (H5Lexists(g, "rounds", H5P_DEFAULT) > 0) {
    const CompoundReader rt(g, "rounds");
    const auto round = rt.ints("round"), steps = rt.ints("steps"), nfe = rt.ints("teacher_nfe");
    const auto stage = rt.strings("stage"), teacher = rt.strings("teacher");
    const auto mix = rt.doubles("mix"), secs = rt.doubles("train_seconds"), pair_secs = rt.doubles("pair_seconds");
    const auto calls =
        rt.has("train_calls") ? rt.doubles("train_calls") : std::vector<double>(rt.rows(), 0.0);  // older files: 0
    for (size_t i = 0; i < rt.rows(); ++i) {
      RoundRecord r;
      r.round = round[i], r.stage = stage_from_name(stage[i]), r.mix = mix[i], r.steps = steps[i],
      r.train_seconds = secs[i];
      r.teacher = teacher[i], r.teacher_nfe = nfe[i], r.pair_seconds = pair_secs[i], r.train_calls = calls[i];
      t.rounds.push_back(std::move(r));
    }
  }
  if (H5Lexists(g, "eval", H5P_DEFAULT) > 0) {
    const CompoundReader ev(g, "eval");
    // The fixed columns of eval_columns() (records.hpp) the file has (older files lack some); the rest are metrics.
    const auto& columns = eval_columns();
    for (const auto& c : ev.names())
      if (std::none_of(columns.begin(), columns.end(), [&](const EvalColumn& e) { return e.name == c; }))
        t.metric_names.push_back(c);
    std::vector<EvalRow> rows(ev.rows());
    for (const auto& c : columns) {
      if (!ev.has(c.name)) continue;
      if (const auto* m = std::get_if<int64_t EvalRow::*>(&c.member)) {
        const auto v = ev.ints(c.name);
        for (size_t i = 0; i < rows.size(); ++i) rows[i].** m = v[i];
      } else if (const auto* d = std::get_if<double EvalRow::*>(&c.member)) {
        const auto v = ev.doubles(c.name);
        for (size_t i = 0; i < rows.size(); ++i) rows[i].** d = v[i];
      } else {
        const auto v = ev.strings(c.name);
        const auto* s = std::get_if<std::string EvalRow::*>(&c.member);
        for (size_t i = 0; i < rows.size(); ++i) rows[i].** s = v[i];
      }
    }
    // A row evaluated during training has a train_step below its stage's steps (files without the column: none).
    auto stage_steps = [&](int64_t r) -> std::optional<int64_t> {
      for (const auto& rr : t.rounds)
        if (rr.round == r) return rr.steps;
      return std::nullopt;
    };
    std::vector<std::vector<double>> metrics;
    for (const auto& m : t.metric_names) metrics.push_back(ev.doubles(m));
    for (size_t i = 0; i < ev.rows(); ++i) {
      EvalRow& r = rows[i];
      if (r.label.empty()) r.label = r.solver;
      for (const auto& col : metrics) r.metrics.push_back(col[i]);
      const auto last = stage_steps(r.round);
      if (!ev.has("train_step")) r.train_step = last.value_or(0);
      if (ev.has("train_step") && last && r.train_step < *last) t.during.push_back(std::move(r));
      else t.eval.push_back(std::move(r));
    }
  }
  return t;
}

/// The ids the experiment's sweep expands to, from its stored text, read as the original experiment file (relative
/// paths in it resolve the same).
std::vector<std::string> expected_ids(const StoredResults& r, const Registry& registry) {
  std::vector<std::string> ids;
  for (const auto& t : load_experiment_text(r.experiment_file, r.experiment_yaml, registry, false).trials)
    ids.push_back(t.id);
  return ids;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? std::nan("") : s / double(v.size());
}

double sample_std(const std::vector<double>& v) {
  if (v.size() < 2) return std::nan("");
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size() - 1));
}

bool adaptive(const ReportRow& r) { return r.steps == 0 && std::isfinite(r.rtol); }

// Of two adaptive rows, is a the more accurate: dopri5 first, then the smaller rtol, then the smaller atol.
bool more_accurate_adaptive(const ReportRow& a, const ReportRow& b) {
  const bool da = a.solver == "dopri5", db = b.solver == "dopri5";
  if (da != db) return da;
  if (a.rtol != b.rtol) return a.rtol < b.rtol;
  return a.atol < b.atol;
}

std::string round_label(const RoundRecord& r) {
  return r.stage == Stage::distill ? "distill" : std::to_string(r.round);
}

// Quality during training: for each eval run that a trial of the group evaluated during training, its rows at each
// training step (those during training and the final ones, at the stage's end), averaged over the trials.
std::vector<TrainingCurve> training_curves(const std::vector<const StoredTrial*>& trials,
                                           const std::vector<std::string>& metrics) {
  std::vector<TrainingCurve> curves;
  struct Acc {
    std::vector<double> nfe;
    std::vector<std::vector<double>> metric;
    int64_t failed = 0;
  };
  std::vector<std::map<int64_t, Acc>> acc;
  for (const StoredTrial* t : trials)
    for (const auto& e : t->during)
      if (std::none_of(curves.begin(), curves.end(), [&](const TrainingCurve& c) { return c.label == e.label; })) {
        TrainingCurve c;
        c.label = e.label, c.solver = e.solver;
        curves.push_back(c);
      }
  acc.resize(curves.size());
  for (const StoredTrial* t : trials)
    for (const auto* rows : {&t->during, &t->eval})
      for (const auto& e : *rows) {
        const auto it =
            std::find_if(curves.begin(), curves.end(), [&](const TrainingCurve& c) { return c.label == e.label; });
        if (it == curves.end()) continue;
        Acc& a = acc[size_t(it - curves.begin())][e.train_step];
        a.metric.resize(metrics.size());
        if (!e.error.empty()) {
          ++a.failed;
          continue;
        }
        a.nfe.push_back(double(e.nfe));
        for (size_t m = 0; m < metrics.size(); ++m) {
          const auto mi = std::find(t->metric_names.begin(), t->metric_names.end(), metrics[m]);
          a.metric[m].push_back(mi == t->metric_names.end()
                                    ? std::nan("")
                                    : e.metrics[static_cast<size_t>(mi - t->metric_names.begin())]);
        }
      }
  for (size_t c = 0; c < curves.size(); ++c) {
    TrainingCurve& curve = curves[c];
    curve.mean.resize(metrics.size());
    curve.std.resize(metrics.size());
    for (const auto& [step, a] : acc[c]) {  // ascending steps
      curve.steps.push_back(step);
      curve.n.push_back(int64_t(a.nfe.size()));
      curve.failed.push_back(a.failed);
      curve.nfe.push_back(mean_of(a.nfe));
      for (size_t m = 0; m < metrics.size(); ++m)
        curve.mean[m].push_back(mean_of(a.metric[m])), curve.std[m].push_back(sample_std(a.metric[m]));
    }
  }
  return curves;
}

// The round comparison: the groups that differ only in their round, each compared with round 0's best converged
// value (its steps-to-quality reference and threshold).
void compare_rounds(Report& rep) {
  const size_t nk = rep.group_keys.size() - 1;  // the last key is the round
  std::vector<size_t> done;
  for (size_t gi = 0; gi < rep.groups.size(); ++gi) {
    if (std::find(done.begin(), done.end(), gi) != done.end()) continue;
    const auto key = std::vector<std::pair<std::string, std::string>>(rep.groups[gi].key.begin(),
                                                                      rep.groups[gi].key.begin() + long(nk));
    std::vector<size_t> same;
    for (size_t gj = gi; gj < rep.groups.size(); ++gj)
      if (std::equal(key.begin(), key.end(), rep.groups[gj].key.begin())) same.push_back(gj), done.push_back(gj);
    const ReportGroup* base = nullptr;
    for (size_t gj : same)
      if (rep.groups[gj].key.back().second == "0") base = &rep.groups[gj];
    RoundComparison c;
    c.key = key;
    const bool has_reference = base && base->reference_row && !rep.metrics.empty();
    if (has_reference) {
      c.reference = base->rows[*base->reference_row].label;
      c.reference_value = base->rows[*base->reference_row].mean[0];
      c.threshold = base->threshold;
    }
    for (size_t gj : same) {
      const ReportGroup& g = rep.groups[gj];
      RoundLine line;
      line.round = g.key.back().second;
      line.train_seconds = g.train_seconds;
      line.train_steps = g.train_steps;
      line.straightness = std::nan("");
      line.one_step = std::nan("");
      std::optional<size_t> accurate, cheapest, tightest;
      for (size_t i = 0; i < g.rows.size(); ++i) {
        const ReportRow& r = g.rows[i];
        if (r.n == 0) continue;
        if (!accurate || r.nfe > g.rows[*accurate].nfe) accurate = i;
        // The adaptive run steps to quality refers to (the most accurate one with a value): the round's cost there.
        if (adaptive(r) && (rep.metrics.empty() || std::isfinite(r.mean[0])) &&
            (!tightest || more_accurate_adaptive(r, g.rows[*tightest])))
          tightest = i;
        if (!rep.metrics.empty() && std::isfinite(r.mean[0]) && (!cheapest || r.nfe < g.rows[*cheapest].nfe))
          cheapest = i;
        if (!has_reference || !std::isfinite(r.mean[0]) || r.mean[0] > c.threshold || r.steps == 0) continue;
        auto& slot = r.solver == "euler" ? line.euler_steps : r.solver == "rk4" ? line.rk4_steps : line.euler_steps;
        if (r.solver != "euler" && r.solver != "rk4") continue;
        if (!slot || r.steps < *slot) slot = r.steps;
      }
      if (accurate) line.straightness = g.rows[*accurate].straightness, line.straightness_run = g.rows[*accurate].label;
      if (tightest) line.adaptive_nfe = g.rows[*tightest].nfe, line.adaptive_run = g.rows[*tightest].label;
      if (cheapest) line.one_step = g.rows[*cheapest].mean[0], line.one_step_run = g.rows[*cheapest].label;
      c.lines.push_back(std::move(line));
    }
    rep.rounds.push_back(std::move(c));
  }
}

// The method comparison: every group (each training method, and each round of a method with rounds) on one line,
// against the best converged value of any of them.
void compare_methods(Report& rep) {
  if (rep.metrics.empty()) return;
  MethodComparison& c = rep.methods.emplace();
  std::optional<size_t> best;
  for (size_t gi = 0; gi < rep.groups.size(); ++gi) {
    const ReportGroup& g = rep.groups[gi];
    if (g.reference_row &&
        (!best || g.rows[*g.reference_row].mean[0] < rep.groups[*best].rows[*rep.groups[*best].reference_row].mean[0]))
      best = gi;
  }
  if (best) {
    const ReportGroup& b = rep.groups[*best];
    c.reference_value = b.rows[*b.reference_row].mean[0];
    c.threshold = c.reference_value + rep.within * std::abs(c.reference_value);
    for (const auto& [k, v] : b.key) c.reference += (c.reference.empty() ? "" : ", ") + k + "=" + v;
    c.reference += " (" + b.rows[*b.reference_row].label + ")";
  }
  // The keys whose values differ between groups name the lines.
  for (size_t k = 0; k < rep.group_keys.size(); ++k)
    for (const auto& g : rep.groups)
      if (g.key[k].second != rep.groups.front().key[k].second) {
        c.keys.push_back(rep.group_keys[k]);
        break;
      }
  for (const auto& g : rep.groups) {
    MethodLine l;
    for (const auto& [k, v] : g.key)
      if (std::find(c.keys.begin(), c.keys.end(), k) != c.keys.end()) l.method.push_back(v);
    for (size_t i = 0; i < g.rows.size(); ++i) {
      const ReportRow& r = g.rows[i];
      if (r.n == 0 || !std::isfinite(r.mean[0])) continue;
      for (size_t j = 0; j < MethodLine::kNfe.size(); ++j)
        if (std::abs(r.nfe - double(MethodLine::kNfe[j])) < 0.5 && !(r.mean[0] >= l.at_nfe[j])) l.at_nfe[j] = r.mean[0];
      if (best && r.mean[0] <= c.threshold && (!l.nfe_within || r.nfe < *l.nfe_within))
        l.nfe_within = r.nfe, l.within_run = r.label;
    }
    if (g.reference_row)
      l.converged = g.rows[*g.reference_row].mean[0], l.converged_run = g.rows[*g.reference_row].label;
    l.train_calls = g.total_train_calls;
    l.train_seconds = g.total_train_seconds;
    c.lines.push_back(std::move(l));
  }
}

}  // namespace

std::vector<std::string> StoredResults::swept_keys() const {
  std::vector<std::string> keys;  // sweep order where /summary gives it (attributes come in name order)
  for (const auto& k : summary_columns)
    for (const auto& t : trials)
      if (std::any_of(t.swept.begin(), t.swept.end(), [&](const auto& kv) { return kv.first == k; }) &&
          std::find(keys.begin(), keys.end(), k) == keys.end())
        keys.push_back(k);
  for (const auto& t : trials)
    for (const auto& kv : t.swept)
      if (std::find(keys.begin(), keys.end(), kv.first) == keys.end()) keys.push_back(kv.first);
  return keys;
}

const StoredTrial& StoredResults::trial(const std::string& id) const {
  std::vector<std::string> ids;
  for (const auto& t : trials) {
    if (t.id == id) return t;
    ids.push_back(t.id);
  }
  throw Error(fmt::format("unknown trial '{}' in {} (valid: {})", id, path, fmt::join(ids, "; ")));
}

StoredResults read_results(const std::string& path, const Registry* registry) {
  Silence s;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(fmt::format("{}: no such file", path));
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw Error(fmt::format("{} is not a flowlab results file: not an HDF5 file", path));
  StoredResults r;
  r.path = path;
  const H5 f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + path);
  if (H5Lexists(f, "trials", H5P_DEFAULT) <= 0)
    throw Error(fmt::format("{} is not a flowlab results file: it has no /trials group", path));
  r.experiment_name = attr_string(f, "experiment_name");
  r.experiment_file = attr_string(f, "experiment_file");
  r.experiment_yaml = attr_string(f, "experiment_yaml");
  const H5 trials(H5Gopen2(f, "trials", H5P_DEFAULT), "opening /trials");
  for (const auto& id : link_names(trials)) r.trials.push_back(read_trial(trials, id));
  if (H5Lexists(f, "summary", H5P_DEFAULT) > 0) {
    // Sweep order, as /summary lists the trials (the group's links come in name order).
    const CompoundReader summary(f, "summary");
    r.summary_columns = summary.names();
    const auto order = summary.strings("id");
    auto rank = [&](const StoredTrial& t) {
      return static_cast<size_t>(std::find(order.begin(), order.end(), t.id) - order.begin());
    };
    std::stable_sort(r.trials.begin(), r.trials.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  }
  if (registry && !r.experiment_yaml.empty()) {
    try {
      std::set<std::string> have;
      for (const auto& t : r.trials) have.insert(t.id);
      for (const auto& id : expected_ids(r, *registry))
        if (!have.count(id)) r.missing.push_back(id);
    } catch (const std::exception& e) {
      r.missing_unknown = fmt::format("the experiment's sweep could not be re-expanded: {}", e.what());
    }
  } else if (r.experiment_yaml.empty()) {
    r.missing_unknown = "the file holds no experiment_yaml attribute";
  }
  return r;
}

Array read_array(const std::string& file, const std::string& dataset) {
  Silence s;
  const H5 f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + file);
  if (H5Lexists(f, dataset.c_str(), H5P_DEFAULT) <= 0 && !has_object(file, dataset))
    throw Error(fmt::format("{}: no dataset {}", file, dataset));
  const H5 d(H5Dopen2(f, dataset.c_str(), H5P_DEFAULT), "opening " + dataset);
  const H5 space(H5Dget_space(d), "the dataspace of " + dataset);
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  Array a;
  size_t n = 1;
  for (auto d2 : dims) a.shape.push_back(static_cast<int64_t>(d2)), n *= d2;
  a.values.resize(n);
  if (n) check(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.values.data()), "reading " + dataset);
  return a;
}

bool has_object(const std::string& file, const std::string& object) {
  Silence s;
  const H5 f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + file);
  // Each link along the path must exist before the next is asked for.
  std::string sofar;
  size_t pos = 0;
  while (pos != std::string::npos) {
    const size_t next = object.find('/', pos);
    sofar = object.substr(0, next);
    pos = next == std::string::npos ? next : next + 1;
    if (sofar.empty()) continue;
    if (H5Lexists(f, sofar.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

PhemaRecord read_phema(const std::string& file, const std::string& trial_id) {
  Silence s;
  const std::string path = "trials/" + trial_id + "/phema";
  if (!has_object(file, path))
    throw Error(fmt::format("{}: trial {} kept no post-hoc EMA snapshots: train it with train.phema (e.g. "
                            "train.phema: {{stds: [0.05, 0.1], snapshots: 16}})",
                            file, trial_id));
  PhemaRecord r;
  {
    const H5 f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + file);
    const H5 g(H5Gopen2(f, path.c_str(), H5P_DEFAULT), "opening " + path);
    r.steps = read_1d<int64_t>(g, "steps");
    r.stds = read_1d<double>(g, "stds");
    std::stringstream names(attr_string(g, "parameters"));
    for (std::string line; std::getline(names, line);) r.parameters.push_back(line);
  }
  r.values = read_array(file, path + "/values");
  if (r.stds.size() != r.steps.size() || r.values.shape.size() != 2 || r.values.shape[0] != int64_t(r.steps.size()))
    throw Error(fmt::format("{}: {} is damaged: {} steps, {} stds and values of {} dimensions", file, path,
                            r.steps.size(), r.stds.size(), r.values.shape.size()));
  return r;
}

StoredModel read_model(const std::string& file, const std::string& trial_id) {
  Silence s;
  const std::string wpath = "trials/" + trial_id + "/weights";
  if (!has_object(file, wpath)) throw Error(fmt::format("{}: trial {} has no stored weights", file, trial_id));
  StoredModel m;
  {
    const H5 f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + file);
    const H5 g(H5Gopen2(f, wpath.c_str(), H5P_DEFAULT), "opening " + wpath);
    m.architecture = attr_string(g, "architecture");
    m.condition = attr_string(g, "condition");
    m.event_shape = attr_int_list(g, "event_shape");
    for (const auto& a : attr_names(g))
      if (a.rfind("param:", 0) == 0) m.params.emplace_back(a.substr(6), attr_string(g, a.c_str()));
    for (const auto& key : link_names(g)) m.weights.emplace_back(key, Array());
  }
  for (auto& [key, value] : m.weights) value = read_array(file, wpath + "/" + key);
  std::string config;
  {
    const H5 f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), "opening " + file);
    const H5 g(H5Gopen2(f, ("trials/" + trial_id).c_str(), H5P_DEFAULT), "opening trials/" + trial_id);
    config = attr_string(g, "config");
  }
  if (!config.empty()) {
    try {
      const YAML::Node model = YAML::Load(config)["model"];
      if (const YAML::Node objective = model["objective"]; objective && objective["name"])
        m.objective = objective["name"].as<std::string>();
      const YAML::Node path = model["path"];
      if (path && path["name"]) {
        m.path = path["name"].as<std::string>();
        if (const YAML::Node params = path["params"])
          for (const auto& kv : params)
            m.path_params.emplace_back(kv.first.as<std::string>(), kv.second.as<std::string>());
      }
    } catch (const YAML::Exception& e) {
      throw Error(fmt::format("{}: trial {}'s config attribute is not valid YAML: {}", file, trial_id, e.what()));
    }
  }
  return m;
}

std::string run_family(const ReportRow& row) {
  const size_t colon = row.label.find(':');
  if (colon == std::string::npos) return row.solver.empty() ? row.label : row.solver;
  std::string out = row.label.substr(0, colon);
  // Parameters split at commas outside brackets (a grid's parameters sit in brackets: grid=edm[rho=7,sigma_max=80]).
  int depth = 0;
  size_t start = colon + 1;
  for (size_t i = start; i <= row.label.size(); ++i) {
    const char c = i < row.label.size() ? row.label[i] : ',';
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c != ',' || depth > 0) continue;
    const std::string part = row.label.substr(start, i - start);
    start = i + 1;
    if (part.empty() || part.rfind("steps=", 0) == 0 || part.rfind("rtol=", 0) == 0 || part.rfind("atol=", 0) == 0)
      continue;
    out += " " + part;
  }
  return out;
}

namespace {

// The report's grouping keys (--by, else every swept key) and metrics (--metric, else every metric), checked.
void choose_keys_and_metrics(Report& rep, const StoredResults& results, const ReportOptions& options) {
  const auto keys = results.swept_keys();
  if (std::find(options.by.begin(), options.by.end(), "round") != options.by.end())
    throw Error("--by: 'round' is not needed: files with reflow rounds are always grouped by round");
  if (options.by.empty()) {
    rep.group_keys = keys;
  } else {
    // The seed is a key too, asked for by name: a group per seed puts paired comparisons side by side.
    std::vector<std::string> valid = keys;
    if (std::find(valid.begin(), valid.end(), "seed") == valid.end()) valid.push_back("seed");
    for (const auto& k : options.by) {
      if (std::find(valid.begin(), valid.end(), k) == valid.end())
        throw Error(
            fmt::format("--by: '{}' is not a swept key of {} (valid: {})", k, results.path, fmt::join(valid, ", ")));
      rep.group_keys.push_back(k);
    }
  }
  std::vector<std::string> all_metrics;
  for (const auto& t : results.trials)
    for (const auto& m : t.metric_names)
      if (std::find(all_metrics.begin(), all_metrics.end(), m) == all_metrics.end()) all_metrics.push_back(m);
  if (options.metrics.empty()) {
    rep.metrics = all_metrics;
  } else {
    for (const auto& m : options.metrics) {
      if (std::find(all_metrics.begin(), all_metrics.end(), m) == all_metrics.end())
        throw Error(
            fmt::format("--metric: '{}' is not a metric of {} (valid: {})", m, results.path,
                        all_metrics.empty() ? std::string("none") : fmt::format("{}", fmt::join(all_metrics, ", "))));
      rep.metrics.push_back(m);
    }
  }
}

// What the groups are made of: the completed trials, or with reflow rounds each round of each (rep.round_views);
// the others go to rep.not_completed.
std::vector<const StoredTrial*> report_sources(Report& rep, const StoredResults& results) {
  // With reflow rounds, each round of a trial is a view of its own (its eval rows, the round as a swept value), so
  // that rounds are grouped apart and compared.
  const bool has_rounds = std::any_of(results.trials.begin(), results.trials.end(),
                                      [](const StoredTrial& t) { return t.rounds.size() > 1; });
  std::vector<const StoredTrial*> sources;
  for (const auto& t : results.trials) {
    if (t.status != "completed") {
      rep.not_completed.push_back(&t);
      continue;
    }
    if (!has_rounds) sources.push_back(&t);
  }
  if (has_rounds) {
    rep.group_keys.push_back("round");
    for (const auto& t : results.trials) {
      if (t.status != "completed") continue;
      std::vector<RoundRecord> rounds = t.rounds;
      if (rounds.empty()) rounds.push_back(RoundRecord());
      for (const auto& r : rounds) {
        StoredTrial v = t;
        v.eval.clear();
        for (const auto& e : t.eval)
          if (e.round == r.round) v.eval.push_back(e);
        v.during.clear();
        for (const auto& e : t.during)
          if (e.round == r.round) v.during.push_back(e);
        v.swept.emplace_back("round", round_label(r));
        v.rounds.clear();  // the stages up to this one, this one last (the method comparison sums their cost)
        for (const auto& before : rounds) {
          v.rounds.push_back(before);
          if (before.round == r.round) break;
        }
        rep.round_views.push_back(std::move(v));
      }
    }
    for (const auto& v : rep.round_views) sources.push_back(&v);
  }
  return sources;
}

// The rows of group `g` from its trials: per eval label, the means over the trials, and the group's training cost.
void fill_rows(ReportGroup& g, const std::vector<const StoredTrial*>& members, const Report& rep, bool has_rounds) {
  // Rows by label, in first-seen order; the values of each label collected over the group's trials.
  struct Acc {
    std::vector<double> nfe, secs, straightness;
    std::vector<std::vector<double>> metric;
  };
  std::vector<Acc> acc;
  std::vector<double> cost, total_calls, total_seconds;
  for (const StoredTrial* t : members) {
    g.trials.push_back(t->id);
    if (has_rounds && !t->rounds.empty()) {
      cost.push_back(t->rounds.back().train_seconds + t->rounds.back().pair_seconds);
      g.train_steps = t->rounds.back().steps;
    }
    double calls = 0, seconds = 0;
    for (const auto& r : t->rounds) calls += r.train_calls, seconds += r.train_seconds + r.pair_seconds;
    total_calls.push_back(calls);
    total_seconds.push_back(t->rounds.empty() ? std::nan("") : seconds);
    for (const auto& e : t->eval) {
      auto it = std::find_if(g.rows.begin(), g.rows.end(), [&](const ReportRow& r) { return r.label == e.label; });
      if (it == g.rows.end()) {
        ReportRow r;
        r.label = e.label, r.solver = e.solver, r.steps = e.steps, r.rtol = e.rtol, r.atol = e.atol;
        g.rows.push_back(r);
        acc.push_back({{}, {}, {}, std::vector<std::vector<double>>(rep.metrics.size())});
        it = g.rows.end() - 1;
      }
      const size_t ri = static_cast<size_t>(it - g.rows.begin());
      if (!e.error.empty()) {
        ++it->failed;
        continue;
      }
      ++it->n;
      acc[ri].nfe.push_back(double(e.nfe));
      acc[ri].secs.push_back(e.samples_per_s > 0 ? 1000.0 / e.samples_per_s : std::nan(""));
      acc[ri].straightness.push_back(e.straightness);
      for (size_t m = 0; m < rep.metrics.size(); ++m) {
        const auto mi = std::find(t->metric_names.begin(), t->metric_names.end(), rep.metrics[m]);
        acc[ri].metric[m].push_back(
            mi == t->metric_names.end() ? std::nan("") : e.metrics[static_cast<size_t>(mi - t->metric_names.begin())]);
      }
    }
  }
  for (size_t ri = 0; ri < g.rows.size(); ++ri) {
    auto& r = g.rows[ri];
    r.nfe = mean_of(acc[ri].nfe);
    r.seconds_per_1000 = mean_of(acc[ri].secs);
    r.straightness = mean_of(acc[ri].straightness);
    for (const auto& v : acc[ri].metric) r.mean.push_back(mean_of(v)), r.std.push_back(sample_std(v));
  }
  g.train_seconds = mean_of(cost);
  g.total_train_calls = mean_of(total_calls);
  g.total_train_seconds = mean_of(total_seconds);
}

// Steps to quality on the first metric: the reference is the adaptive row with the smallest rtol (then atol),
// dopri5 first; without adaptive rows, the row with the most steps (then NFE).
void pick_steps_to_quality(ReportGroup& g, double within) {
  auto has_value = [&](size_t i) { return std::isfinite(g.rows[i].mean[0]); };
  std::optional<size_t> ref;
  for (size_t i = 0; i < g.rows.size(); ++i)
    if (has_value(i) && adaptive(g.rows[i]) && (!ref || more_accurate_adaptive(g.rows[i], g.rows[*ref]))) ref = i;
  if (!ref)
    for (size_t i = 0; i < g.rows.size(); ++i)
      if (has_value(i) && (!ref || g.rows[i].steps > g.rows[*ref].steps ||
                           (g.rows[i].steps == g.rows[*ref].steps && g.rows[i].nfe > g.rows[*ref].nfe)))
        ref = i;
  g.reference_row = ref;
  if (ref) {
    const double best = g.rows[*ref].mean[0];
    g.threshold = best + within * std::abs(best);
    // One pick per run family: "euler", "euler grid=edm", "adams_bashforth order=2".
    const auto family = [](const ReportRow& r) { return run_family(r); };
    std::vector<std::string> solvers;
    for (const auto& r : g.rows)
      if (std::find(solvers.begin(), solvers.end(), family(r)) == solvers.end()) solvers.push_back(family(r));
    for (const auto& s : solvers) {
      QualityPick p;
      p.solver = s;
      std::optional<size_t> best_row;
      for (size_t i = 0; i < g.rows.size(); ++i) {
        const auto& r = g.rows[i];
        if (family(r) != s || !has_value(i)) continue;
        if (!best_row || r.mean[0] < g.rows[*best_row].mean[0]) best_row = i;
        if (r.mean[0] > g.threshold) continue;
        // The cheapest within: fewest steps for fixed-step rows, fewest NFE for adaptive ones.
        if (!p.row || r.steps < g.rows[*p.row].steps || (r.steps == g.rows[*p.row].steps && r.nfe < g.rows[*p.row].nfe))
          p.row = i;
      }
      if (!best_row) continue;
      p.best_row = *best_row;
      g.picks.push_back(p);
    }
  }
}

}  // namespace

Report build_report(const StoredResults& results, const ReportOptions& options) {
  Report rep;
  rep.within = options.within;
  rep.total = results.trials.size();
  rep.missing = results.missing;
  rep.missing_unknown = results.missing_unknown;
  choose_keys_and_metrics(rep, results, options);
  const bool has_rounds = std::any_of(results.trials.begin(), results.trials.end(),
                                      [](const StoredTrial& t) { return t.rounds.size() > 1; });
  const std::vector<const StoredTrial*> sources = report_sources(rep, results);

  // Groups in first-seen order of their key values.
  std::vector<std::vector<std::string>> group_values;
  std::vector<std::vector<const StoredTrial*>> members;
  for (const StoredTrial* tp : sources) {
    const StoredTrial& t = *tp;
    std::vector<std::string> values;
    for (const auto& k : rep.group_keys) {
      std::string v = k == "seed" ? std::to_string(t.seed) : std::string();  // unless a swept key is named seed
      for (const auto& kv : t.swept)
        if (kv.first == k) v = kv.second;
      values.push_back(v);
    }
    const auto it = std::find(group_values.begin(), group_values.end(), values);
    if (it == group_values.end()) {
      group_values.push_back(values);
      members.push_back({&t});
    } else {
      members[static_cast<size_t>(it - group_values.begin())].push_back(&t);
    }
  }

  for (size_t gi = 0; gi < group_values.size(); ++gi) {
    ReportGroup g;
    for (size_t k = 0; k < rep.group_keys.size(); ++k) g.key.emplace_back(rep.group_keys[k], group_values[gi][k]);
    fill_rows(g, members[gi], rep, has_rounds);
    if (!rep.metrics.empty()) pick_steps_to_quality(g, options.within);
    g.curves = training_curves(members[gi], rep.metrics);
    rep.has_curves = rep.has_curves || !g.curves.empty();
    rep.groups.push_back(std::move(g));
  }
  if (has_rounds) compare_rounds(rep);
  if (std::find(rep.group_keys.begin(), rep.group_keys.end(), "model.objective") != rep.group_keys.end())
    compare_methods(rep);
  rep.during_only = options.during;
  if (options.during && !rep.has_curves)
    throw Error(fmt::format("--during: {} holds no evaluations during training of a completed trial (set eval.every in "
                            "the experiment)",
                            results.path));
  return rep;
}

namespace {

/// Display width of UTF-8 text (code points; the report uses no wide characters).
size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::string num(double v) {
  if (std::isnan(v)) return "-";
  if (v == 0) return "0";
  const double a = std::abs(v);
  if (a >= 1e5 || a < 1e-3) return fmt::format("{:.3e}", v);
  return fmt::format("{:.4g}", v);
}

std::string nfe_text(double v) {
  return std::isnan(v) ? "-" : (v == std::round(v) ? fmt::format("{:.0f}", v) : fmt::format("{:.1f}", v));
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string group_title(const ReportGroup& g) {
  if (g.key.empty()) return "all trials";
  std::vector<std::string> parts;
  for (const auto& [k, v] : g.key) parts.push_back(k + "=" + v);
  return fmt::format("{}", fmt::join(parts, ", "));
}

void print_aligned(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                   const std::vector<bool>& right) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], display_width(r[i]));
    }
  for (const auto& r : rows) {
    std::string line = "  ";
    for (size_t i = 0; i < r.size(); ++i) {
      const std::string pad(w[i] - display_width(r[i]), ' ');
      line += i < right.size() && right[i] ? pad + r[i] : r[i] + (i + 1 < r.size() ? pad : "");
      if (i + 1 < r.size()) line += "  ";
    }
    out << line << "\n";
  }
}

// A table, its first row the header: Markdown (`right` columns aligned right) or text aligned in columns.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right,
                 bool md) {
  if (!md) return print_aligned(out, rows, right);
  out << "\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    out << "| " << fmt::format("{}", fmt::join(rows[i], " | ")) << " |\n";
    if (i > 0) continue;
    out << "|";
    for (size_t c = 0; c < rows[0].size(); ++c) out << (c < right.size() && right[c] ? "---:|" : "---|");
    out << "\n";
  }
}

std::string pick_text(const Report& rep, const ReportGroup& g, const QualityPick& p) {
  if (p.row) {
    const auto& r = g.rows[*p.row];
    const std::string what = r.steps > 0             ? fmt::format("{} steps", r.steps)
                             : std::isfinite(r.rtol) ? fmt::format("rtol={:g}", r.rtol)
                                                     : r.label;
    return fmt::format("{} ({} NFE): {} {}", what, nfe_text(r.nfe), rep.metrics[0], num(r.mean[0]));
  }
  const auto& b = g.rows[p.best_row];
  return fmt::format("not reached (best: {}, {} NFE, {} {})", b.label, nfe_text(b.nfe), rep.metrics[0], num(b.mean[0]));
}

// Each metric of a group against the training step: a row per step, a column per eval run evaluated during training.
void write_curves(const Report& rep, const ReportGroup& g, bool md, std::ostream& out) {
  if (g.curves.empty()) return;
  std::vector<int64_t> steps;
  for (const auto& c : g.curves) steps.insert(steps.end(), c.steps.begin(), c.steps.end());
  std::sort(steps.begin(), steps.end());
  steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
  std::vector<std::string> what = rep.metrics;
  if (what.empty()) what.push_back("NFE");  // without metrics, what there is: the NFE (adaptive solvers' change)
  for (size_t m = 0; m < what.size(); ++m) {
    out << (md ? "\n" : "")
        << fmt::format("{}{} during training: mean{} over the trials at each training step; step {} is the "
                       "final evaluation\n",
                       md ? "" : "  ", what[m], rep.metrics.empty() ? "" : " ± sample std",
                       g.train_steps > 0 ? std::to_string(g.train_steps) : std::to_string(steps.back()));
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> head = {"step"};
    for (const auto& c : g.curves) head.push_back(c.label);
    rows.push_back(head);
    for (int64_t step : steps) {
      std::vector<std::string> cells = {std::to_string(step)};
      for (const auto& c : g.curves) {
        const auto it = std::find(c.steps.begin(), c.steps.end(), step);
        const size_t k = static_cast<size_t>(it - c.steps.begin());
        if (it == c.steps.end()) cells.push_back("-");
        else if (rep.metrics.empty()) cells.push_back(nfe_text(c.nfe[k]));
        else
          cells.push_back(std::isnan(c.std[m][k]) ? num(c.mean[m][k])
                                                  : fmt::format("{} ± {}", num(c.mean[m][k]), num(c.std[m][k])));
      }
      rows.push_back(cells);
    }
    const std::vector<bool> right(head.size(), true);
    print_table(out, rows, right, md);
  }
}

// A group's steps-to-quality lines: the reference, then per solver the cheapest run within the threshold.
// The method comparison's table (MethodComparison).
void write_methods(const Report& rep, const MethodComparison& c, bool md, std::ostream& out) {
  out << "\n" << (md ? "### " : "") << "method comparison (" << rep.metrics[0] << ")\n";
  if (c.reference.empty()) out << (md ? "\n" : "  ") << "no method has a converged value\n";
  else
    out << (md ? "\n" : "  ")
        << fmt::format(
               "NFE within {:g}%: the fewest NFE of a run within {:g}% of the best converged {} {} ({}); -: none. "
               "train calls: forward passes of one row, training and teacher pairs, up to that stage",
               rep.within * 100, rep.within * 100, rep.metrics[0], num(c.reference_value), c.reference)
        << "\n";
  std::vector<std::vector<std::string>> rows = {{fmt::format("{}", fmt::join(c.keys, ", ")), "1 NFE", "2 NFE", "4 NFE",
                                                 "converged", fmt::format("NFE within {:g}%", rep.within * 100),
                                                 "train calls", "train s"}};
  for (const auto& l : c.lines)
    rows.push_back({fmt::format("{}", fmt::join(l.method, ", ")), num(l.at_nfe[0]), num(l.at_nfe[1]), num(l.at_nfe[2]),
                    l.converged_run.empty() ? "-" : fmt::format("{} ({})", num(l.converged), l.converged_run),
                    l.nfe_within ? fmt::format("{:g} ({})", *l.nfe_within, l.within_run) : "-",
                    fmt::format("{:.3g}", l.train_calls), fmt::format("{:.1f}", l.train_seconds)});
  std::vector<bool> right = {false, true, true, true, true, true, true, true};
  print_table(out, rows, right, md);
  if (md) out << "\n";
}

void write_steps_to_quality(const Report& rep, const ReportGroup& g, bool md, std::ostream& out) {
  if (g.reference_row) {
    const auto& ref = g.rows[*g.reference_row];
    out << fmt::format("{}steps to quality: {} within {:g}% of the best converged value {} ({})\n", md ? "" : "  ",
                       rep.metrics[0], rep.within * 100, num(ref.mean[0]), ref.label);
    for (const auto& p : g.picks) out << fmt::format("{}{}: {}\n", md ? "- " : "    ", p.solver, pick_text(rep, g, p));
  } else if (!rep.metrics.empty()) {
    out << (md ? "" : "  ") << "steps to quality: no row has a value\n";
  }
}

}  // namespace

void write_quality_summary(const Report& rep, std::ostream& out) {
  for (const auto& g : rep.groups) {
    out << group_title(g) << " (" << counted(static_cast<int64_t>(g.trials.size()), "trial") << ")\n";
    write_steps_to_quality(rep, g, false, out);
  }
}

namespace {

std::string csv_num(double v) { return std::isnan(v) ? std::string() : fmt::format("{}", v); }

// --format csv --during: one line per (group, run, training step).
void write_csv_during(const Report& rep, const std::vector<std::string>& status_lines, std::ostream& out,
                      std::ostream& notes) {
  std::vector<std::string> head = rep.group_keys;
  for (const char* c : {"label", "solver", "train_step", "n", "failed", "nfe"}) head.push_back(c);
  for (const auto& m : rep.metrics) head.push_back(m + "_mean"), head.push_back(m + "_std");
  for (size_t i = 0; i < head.size(); ++i) out << (i ? "," : "") << csv_field(head[i]);
  out << "\n";
  for (const auto& g : rep.groups)
    for (const auto& c : g.curves)
      for (size_t k = 0; k < c.steps.size(); ++k) {
        std::vector<std::string> f;
        for (const auto& kv : g.key) f.push_back(csv_field(kv.second));
        f.push_back(csv_field(c.label)), f.push_back(csv_field(c.solver)), f.push_back(std::to_string(c.steps[k]));
        f.push_back(std::to_string(c.n[k])), f.push_back(std::to_string(c.failed[k])), f.push_back(csv_num(c.nfe[k]));
        for (size_t m = 0; m < rep.metrics.size(); ++m)
          f.push_back(csv_num(c.mean[m][k])), f.push_back(csv_num(c.std[m][k]));
        for (size_t i = 0; i < f.size(); ++i) out << (i ? "," : "") << f[i];
        out << "\n";
      }
  for (const auto& l : status_lines) notes << l << "\n";
}

// --format csv: one line per (group, run).
void write_csv(const Report& rep, const std::vector<std::string>& status_lines, std::ostream& out,
               std::ostream& notes) {
  std::vector<std::string> head = rep.group_keys;
  for (const char* c : {"label", "solver", "steps", "rtol", "atol", "n", "failed", "nfe"}) head.push_back(c);
  for (const auto& m : rep.metrics) head.push_back(m + "_mean"), head.push_back(m + "_std");
  head.push_back("seconds_per_1000");
  for (size_t i = 0; i < head.size(); ++i) out << (i ? "," : "") << csv_field(head[i]);
  out << "\n";
  for (const auto& g : rep.groups)
    for (const auto& r : g.rows) {
      std::vector<std::string> f;
      for (const auto& kv : g.key) f.push_back(csv_field(kv.second));
      f.push_back(csv_field(r.label)), f.push_back(csv_field(r.solver)), f.push_back(std::to_string(r.steps));
      f.push_back(csv_num(r.rtol)), f.push_back(csv_num(r.atol));
      f.push_back(std::to_string(r.n)), f.push_back(std::to_string(r.failed)), f.push_back(csv_num(r.nfe));
      for (size_t m = 0; m < rep.metrics.size(); ++m) f.push_back(csv_num(r.mean[m])), f.push_back(csv_num(r.std[m]));
      f.push_back(csv_num(r.seconds_per_1000));
      for (size_t i = 0; i < f.size(); ++i) out << (i ? "," : "") << f[i];
      out << "\n";
    }
  for (const auto& l : status_lines) notes << l << "\n";
  if (rep.has_curves) notes << "the file holds evaluations during training: --during prints them\n";
}

// One group's table (term or md), its steps-to-quality summary and its training curves.
void write_group(const Report& rep, const ReportGroup& g, bool md, std::ostream& out) {
  if (rep.during_only && g.curves.empty()) return;
  out << "\n"
      << (md ? "### " : "") << group_title(g) << " (" + counted(static_cast<int64_t>(g.trials.size()), "trial") + ")"
      << "\n";
  if (rep.during_only) {
    write_curves(rep, g, md, out);
    return;
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> head = {"run", "NFE"};
  for (const auto& m : rep.metrics) head.push_back(m);
  head.push_back("s/1000");
  head.push_back("n");
  head.push_back("failed");
  rows.push_back(head);
  for (const auto& r : g.rows) {
    std::vector<std::string> cells = {r.label, nfe_text(r.nfe)};
    for (size_t m = 0; m < rep.metrics.size(); ++m)
      cells.push_back(std::isnan(r.std[m]) ? num(r.mean[m]) : fmt::format("{} ± {}", num(r.mean[m]), num(r.std[m])));
    cells.push_back(num(r.seconds_per_1000));
    cells.push_back(std::to_string(r.n));
    cells.push_back(std::to_string(r.failed));
    rows.push_back(cells);
  }
  std::vector<bool> right(head.size(), true);
  right[0] = false;
  print_table(out, rows, right, md);
  if (md) out << "\n";
  write_steps_to_quality(rep, g, md, out);
  write_curves(rep, g, md, out);
}

// One round comparison of a file with reflow rounds.
void write_round_comparison(const Report& rep, const RoundComparison& c, bool md, std::ostream& out) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : c.key) parts.push_back(k + "=" + v);
  out << "\n"
      << (md ? "### " : "") << "round comparison" << (parts.empty() ? "" : fmt::format(" ({})", fmt::join(parts, ", ")))
      << "\n";
  if (c.reference.empty()) out << (md ? "\n" : "  ") << "steps: round 0 has no converged value to compare with\n";
  else
    out << (md ? "\n" : "  ")
        << fmt::format("steps: the fewest within {:g}% of round 0's best converged {} {} ({}), -: "
                       "not reached at any step count evaluated",
                       rep.within * 100, rep.metrics[0], num(c.reference_value), c.reference)
        << "\n";
  const std::string one = rep.metrics.empty() ? "cheapest run" : rep.metrics[0] + " of the cheapest run";
  std::vector<std::vector<std::string>> rows = {
      {"round", "Euler steps", "RK4 steps", "adaptive NFE", "straightness", one, "train+pairs s", "train steps"}};
  auto steps_text = [](const std::optional<int64_t>& v) { return v ? std::to_string(*v) : std::string("-"); };
  for (const auto& l : c.lines)
    rows.push_back({l.round, steps_text(l.euler_steps), steps_text(l.rk4_steps),
                    l.adaptive_run.empty() ? "-" : fmt::format("{} ({})", nfe_text(l.adaptive_nfe), l.adaptive_run),
                    l.straightness_run.empty() ? "-" : fmt::format("{} ({})", num(l.straightness), l.straightness_run),
                    l.one_step_run.empty() ? "-" : fmt::format("{} ({})", num(l.one_step), l.one_step_run),
                    fmt::format("{:.1f}", l.train_seconds), std::to_string(l.train_steps)});
  std::vector<bool> right = {false, true, true, true, true, true, true, true};
  print_table(out, rows, right, md);
  if (md) out << "\n";
}

}  // namespace

void write_report(const Report& rep, const std::string& format, std::ostream& out, std::ostream& notes) {
  if (format != "term" && format != "md" && format != "csv")
    throw Error(fmt::format("--format: '{}' is not a format (valid: md, csv, term)", format));
  std::set<std::string> completed_ids;  // a trial with reflow rounds is in one group per round
  for (const auto& g : rep.groups) completed_ids.insert(g.trials.begin(), g.trials.end());
  const size_t completed = completed_ids.size();
  std::vector<std::string> status_lines;
  if (!rep.missing.empty())
    status_lines.push_back(
        fmt::format("missing ({} without a result in the file): {}", rep.missing.size(), fmt::join(rep.missing, "; ")));
  if (!rep.missing_unknown.empty()) status_lines.push_back("missing trials unknown: " + rep.missing_unknown);
  for (const auto* t : rep.not_completed)
    status_lines.push_back(fmt::format("{}: {}{}", t->id, t->status, t->error.empty() ? "" : ": " + t->error));

  if (format == "csv") {
    if (rep.during_only) write_csv_during(rep, status_lines, out, notes);
    else write_csv(rep, status_lines, out, notes);
    return;
  }

  const bool md = format == "md";
  out << fmt::format(
      "{} of {} trials in the file completed\n{}metrics: mean ± sample std (n-1) over the trials of each "
      "group; n: rows averaged; failed: rows with an error (left out); s/1000: seconds per 1000 samples\n",
      completed, rep.total, md ? "\n" : "");
  for (const auto& g : rep.groups) write_group(rep, g, md, out);
  if (!rep.during_only)
    for (const auto& c : rep.rounds) write_round_comparison(rep, c, md, out);
  if (rep.methods && !rep.during_only) write_methods(rep, *rep.methods, md, out);
  if (rep.groups.empty()) out << "\nno completed trial in the file\n";
  if (!status_lines.empty()) {
    out << "\n";
    for (const auto& l : status_lines) out << (md ? "- " : "") << l << "\n";
  }
}

}  // namespace flowlab
