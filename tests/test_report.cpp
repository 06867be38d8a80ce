// `flowlab report`: the quality-vs-steps table of a test experiment checked against means and sample stds computed
// here from the eval tables with the HDF5 C API; a partial file (a trial missing, one failed); bad input; and the
// steps-to-quality pick on a hand-made file with known values.
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <hdf5.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "flowlab/images.hpp"
#include "flowlab/integrity.hpp"
#include "flowlab/report.hpp"
#include "h5_support.hpp"
#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
namespace fs = std::filesystem;

namespace {

using flowlab::test::attr;
using flowlab::test::table_column;

struct Scratch : flowlab::test::ScratchDir {
  explicit Scratch(const std::string& name) : ScratchDir("flowlab_report_" + name) {}
};

flowlab::test::CommandResult flowlab_cmd(const std::string& args) {
  return flowlab::test::run_command(std::string("FLOWLAB_PLUGIN_PATH= ") + FLOWLAB_CLI + " " + args);
}

/// The test experiment's results, run once per test process.
const std::string& results_file() {
  static Scratch s("run");
  static std::string out;
  if (out.empty()) {
    out = s.file("report.h5");
    const auto r = flowlab_cmd(fmt::format("run {}/experiments/report.yaml --out {}", FLOWLAB_TEST_DATA, out));
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
  }
  return out;
}

/// One trial's eval table, read here independently of the report library: label -> (nfe, frechet, error).
struct Cell {
  int64_t nfe;
  double metric;
  std::string error;
};
std::vector<std::pair<std::string, Cell>> eval_table(const std::string& file, const std::string& id) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t d = H5Dopen2(f, ("trials/" + id + "/eval").c_str(), H5P_DEFAULT);
  REQUIRE(d >= 0);
  const hid_t s = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(s, &n, nullptr);
  struct Rec {
    char label[64];
    int64_t nfe;
    double metric;
    char error[256];
  };
  const hid_t str64 = H5Tcopy(H5T_C_S1), str256 = H5Tcopy(H5T_C_S1);
  H5Tset_size(str64, 64), H5Tset_size(str256, 256);
  const hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(Rec));
  H5Tinsert(t, "label", HOFFSET(Rec, label), str64);
  H5Tinsert(t, "nfe", HOFFSET(Rec, nfe), H5T_NATIVE_INT64);
  H5Tinsert(t, "frechet", HOFFSET(Rec, metric), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "error", HOFFSET(Rec, error), str256);
  std::vector<Rec> recs(n);
  REQUIRE(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, recs.data()) >= 0);
  H5Tclose(t), H5Tclose(str64), H5Tclose(str256), H5Sclose(s), H5Dclose(d), H5Fclose(f);
  std::vector<std::pair<std::string, Cell>> out;
  for (const auto& r : recs) out.push_back({r.label, {r.nfe, r.metric, r.error}});
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

// ---- the hand-made file -------------------------------------------------------------------------------------------

void put_attr(hid_t obj, const char* name, const std::string& v) {
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  const hid_t s = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  const char* p = v.c_str();
  H5Awrite(a, t, &p);
  H5Aclose(a), H5Sclose(s), H5Tclose(t);
}

void put_attr(hid_t obj, const char* name, int64_t v) {
  const hid_t s = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(obj, name, H5T_NATIVE_INT64, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a), H5Sclose(s);
}

struct HandRow {
  std::string solver, label;
  int64_t steps;
  double rtol;
  int64_t nfe;
  double w2;
  std::string error;
};

/// An eval table with the columns flowlab writes (fixed-length strings), one metric w2.
void put_eval(hid_t g, const std::vector<HandRow>& rows) {
  struct Rec {
    char solver[32];
    char label[64];
    int64_t steps;
    double rtol, atol;
    int64_t nfe;
    double samples_per_s;
    char error[32];
    double w2;
  };
  const hid_t s32 = H5Tcopy(H5T_C_S1), s64 = H5Tcopy(H5T_C_S1);
  H5Tset_size(s32, 32), H5Tset_size(s64, 64);
  const hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(Rec));
  H5Tinsert(t, "solver", HOFFSET(Rec, solver), s32);
  H5Tinsert(t, "label", HOFFSET(Rec, label), s64);
  H5Tinsert(t, "steps", HOFFSET(Rec, steps), H5T_NATIVE_INT64);
  H5Tinsert(t, "rtol", HOFFSET(Rec, rtol), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "atol", HOFFSET(Rec, atol), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "nfe", HOFFSET(Rec, nfe), H5T_NATIVE_INT64);
  H5Tinsert(t, "samples_per_s", HOFFSET(Rec, samples_per_s), H5T_NATIVE_DOUBLE);
  H5Tinsert(t, "error", HOFFSET(Rec, error), s32);
  H5Tinsert(t, "w2", HOFFSET(Rec, w2), H5T_NATIVE_DOUBLE);
  std::vector<Rec> recs(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    Rec& r = recs[i];
    std::memset(&r, 0, sizeof r);
    std::strncpy(r.solver, rows[i].solver.c_str(), 31);
    std::strncpy(r.label, rows[i].label.c_str(), 63);
    std::strncpy(r.error, rows[i].error.c_str(), 31);
    r.steps = rows[i].steps, r.rtol = rows[i].rtol, r.atol = std::isnan(rows[i].rtol) ? std::nan("") : 1e-6;
    r.nfe = rows[i].nfe, r.samples_per_s = 1000.0 / double(rows[i].nfe), r.w2 = rows[i].w2;
  }
  const hsize_t n = recs.size();
  const hid_t sp = H5Screate_simple(1, &n, nullptr);
  const hid_t d = H5Dcreate2(g, "eval", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, recs.data());
  H5Dclose(d), H5Sclose(sp), H5Tclose(t), H5Tclose(s32), H5Tclose(s64);
}

/// Group x=a: dopri5 at two tolerances (the smaller one, w2 1.0, is the reference); group x=b: no adaptive rows, so
/// the most steps (euler 50, w2 2.0) is. Seeds 0 and 1 sit at value -/+ 0.01; euler 5 failed on seed 1.
void write_hand_made(const std::string& path) {
  const double nan = std::nan("");
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  put_attr(f, "flowlab_version", std::string("test"));
  put_attr(f, "experiment_name", std::string("hand_made"));
  const hid_t trials = H5Gcreate2(f, "trials", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const std::map<std::string, std::vector<std::tuple<std::string, int64_t, double, int64_t, double>>> values = {
      {"a",
       {{"euler", 5, nan, 5, 2.0}, {"euler", 10, nan, 10, 1.2}, {"euler", 20, nan, 20, 1.08}, {"euler", 50, nan, 50, 1.01},
        {"rk4", 2, nan, 8, 1.5}, {"rk4", 5, nan, 20, 1.09}, {"rk4", 10, nan, 40, 1.0},
        {"dopri5", 0, 1e-3, 20, 1.3}, {"dopri5", 0, 1e-5, 50, 1.0}}},
      {"b",
       {{"euler", 10, nan, 10, 2.5}, {"euler", 20, nan, 20, 2.1}, {"euler", 50, nan, 50, 2.0},
        {"rk4", 5, nan, 20, 2.3}, {"rk4", 10, nan, 40, 2.15}}}};
  for (const auto& [x, rows] : values)
    for (int64_t seed : {0, 1}) {
      const std::string id = fmt::format("x={},seed={}", x, seed);
      const hid_t g = H5Gcreate2(trials, id.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      put_attr(g, "status", std::string("completed"));
      put_attr(g, "error", std::string(""));
      put_attr(g, "seed", seed);
      put_attr(g, "sweep:x", x);
      std::vector<HandRow> hr;
      for (const auto& [solver, steps, rtol, nfe, w2] : rows) {
        const std::string label = steps > 0 ? fmt::format("{}:steps={}", solver, steps) : fmt::format("{}:rtol={:g}", solver, rtol);
        const bool failed = x == "a" && solver == "euler" && steps == 5 && seed == 1;
        hr.push_back({solver, label, steps, rtol, nfe, failed ? nan : w2 + (seed == 0 ? -0.01 : 0.01), failed ? "boom" : ""});
      }
      put_eval(g, hr);
      H5Gclose(g);
    }
  H5Gclose(trials), H5Fclose(f);
}

}  // namespace

TEST_CASE("report: rows and mean ± sample std over seeds match the eval tables", "[report]") {
  const std::string& file = results_file();
  const auto csv = flowlab_cmd("report " + file + " --format csv");
  INFO(csv.err);
  REQUIRE(csv.status == 0);
  const auto lines = split(csv.out, '\n');
  REQUIRE(lines.size() >= 2);
  const auto head = split(lines[0], ',');
  auto col = [&](const std::string& name) {
    const auto it = std::find(head.begin(), head.end(), name);
    REQUIRE(it != head.end());
    return static_cast<size_t>(it - head.begin());
  };
  const size_t c_lr = col("train.lr"), c_label = col("label"), c_n = col("n"), c_nfe = col("nfe");
  const size_t c_mean = col("frechet_mean"), c_std = col("frechet_std");
  CHECK(std::find(head.begin(), head.end(), "seed") == head.end());  // the seed is averaged over, not a group key

  // The expectation, from the eval tables read here: per (lr, label) the values over seeds 0 and 1.
  std::map<std::pair<std::string, std::string>, std::vector<Cell>> by;
  std::vector<std::string> labels;
  for (const char* lr : {"1.0e-2", "3.0e-3"})
    for (int seed : {0, 1}) {
      const std::string id = fmt::format("lr={},seed={}", lr, seed);
      for (const auto& [label, cell] : eval_table(file, id)) {
        by[{lr, label}].push_back(cell);
        if (std::find(labels.begin(), labels.end(), label) == labels.end()) labels.push_back(label);
      }
    }
  CHECK(labels == std::vector<std::string>{"euler:steps=2", "euler:steps=8", "rk4:steps=4", "dopri5:rtol=0.0001"});
  size_t checked = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const auto f = split(lines[i], ',');
    REQUIRE(f.size() == head.size());
    const auto& cells = by.at({f[c_lr], f[c_label]});
    REQUIRE(cells.size() == 2);
    const double a = cells[0].metric, b = cells[1].metric;
    const double mean = (a + b) / 2, sd = std::sqrt(((a - mean) * (a - mean) + (b - mean) * (b - mean)) / 1.0);
    CHECK(std::stod(f[c_mean]) == Catch::Approx(mean).epsilon(1e-12));
    CHECK(std::stod(f[c_std]) == Catch::Approx(sd).epsilon(1e-9).margin(1e-15));
    CHECK(std::stod(f[c_nfe]) == Catch::Approx(double(cells[0].nfe + cells[1].nfe) / 2));
    CHECK(f[c_n] == "2");
    ++checked;
  }
  CHECK(checked == 8);  // 2 learning rates x 4 runs

  // --by seed: a group per seed (paired comparisons), each row the trial's own value.
  const auto per_seed = flowlab_cmd("report " + file + " --format csv --by train.lr --by seed");
  REQUIRE(per_seed.status == 0);
  const auto seed_lines = split(per_seed.out, '\n');
  CHECK(split(seed_lines[0], ',')[1] == "seed");
  size_t seed_rows = 0;
  for (size_t i = 1; i < seed_lines.size(); ++i) {
    if (seed_lines[i].empty()) continue;
    const auto f = split(seed_lines[i], ',');
    const auto& cells = by.at({f[c_lr], f[c_label + 1]});
    const Cell& cell = cells.at(std::stoul(f[1]));  // collected in seed order 0, 1
    CHECK(std::stod(f[c_mean + 1]) == cell.metric);
    CHECK(std::stod(f[c_nfe + 1]) == double(cell.nfe));
    CHECK(f[c_n + 1] == "1");
    ++seed_rows;
  }
  CHECK(seed_rows == 16);  // 2 learning rates x 2 seeds x 4 runs

  const auto term = flowlab_cmd("report " + file);
  REQUIRE(term.status == 0);
  CHECK_THAT(term.out, ContainsSubstring("train.lr=1.0e-2 (2 trials)"));
  CHECK_THAT(term.out, ContainsSubstring("train.lr=3.0e-3 (2 trials)"));
  CHECK_THAT(term.out, ContainsSubstring("euler:steps=8"));
  CHECK_THAT(term.out, ContainsSubstring(" ± "));
  CHECK_THAT(term.out, ContainsSubstring("steps to quality: frechet within 10% of the best converged value"));
  CHECK_THAT(term.out, ContainsSubstring("(dopri5:rtol=0.0001)"));
  CHECK_THAT(term.out, ContainsSubstring("4 of 4 trials in the file completed"));

  const auto md = flowlab_cmd("report " + file + " --format md --by train.lr");
  REQUIRE(md.status == 0);
  CHECK_THAT(md.out, ContainsSubstring("### train.lr=1.0e-2"));
  CHECK_THAT(md.out, ContainsSubstring("| run | NFE | frechet | s/1000 | n | failed |"));
}

TEST_CASE("report on a partial file names the missing and the failed trials", "[report]") {
  Scratch s("partial");
  const std::string file = s.file("partial.h5");
  fs::copy_file(results_file(), file);
  {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0);
    REQUIRE(H5Ldelete(f, "trials/lr=3.0e-3,seed=1", H5P_DEFAULT) >= 0);
    const hid_t g = H5Gopen2(f, "trials/lr=1.0e-2,seed=1", H5P_DEFAULT);
    REQUIRE(H5Adelete(g, "status") >= 0);
    REQUIRE(H5Adelete(g, "error") >= 0);
    put_attr(g, "status", std::string("failed"));
    put_attr(g, "error", std::string("segfault in a plugin"));
    H5Gclose(g), H5Fclose(f);
  }
  const auto r = flowlab_cmd("report " + file);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, ContainsSubstring("2 of 3 trials in the file completed"));
  CHECK_THAT(r.out, ContainsSubstring("missing (1 without a result in the file): lr=3.0e-3,seed=1"));
  CHECK_THAT(r.out, ContainsSubstring("lr=1.0e-2,seed=1: failed: segfault in a plugin"));
  CHECK_THAT(r.out, ContainsSubstring("train.lr=1.0e-2 (1 trial)"));
  // csv: the table on stdout, the notes on stderr
  const auto csv = flowlab_cmd("report " + file + " --format csv");
  CHECK_THAT(csv.err, ContainsSubstring("lr=3.0e-3,seed=1"));
  CHECK_THAT(csv.out, !ContainsSubstring("missing"));
}

TEST_CASE("report: bad input lists the valid choices", "[report]") {
  const std::string& file = results_file();
  auto r = flowlab_cmd("report " + file + " --metric fid");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, ContainsSubstring("--metric: 'fid' is not a metric of"));
  CHECK_THAT(r.err, ContainsSubstring("(valid: frechet)"));
  r = flowlab_cmd("report " + file + " --by lr");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, ContainsSubstring("--by: 'lr' is not a swept key of"));
  CHECK_THAT(r.err, ContainsSubstring("(valid: train.lr, seed)"));
  r = flowlab_cmd("report " + file + " --format xml");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, ContainsSubstring("(valid: md, csv, term)"));
  Scratch s("bad");
  std::ofstream(s.file("notes.h5")) << "not hdf5\n";
  r = flowlab_cmd("report " + s.file("notes.h5"));
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: " + s.file("notes.h5") +
                     " is not an HDF5 file (no HDF5 signature): it is not a flowlab results file\n");
  {
    const hid_t f = H5Fcreate(s.file("other.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
  }
  r = flowlab_cmd("report " + s.file("other.h5"));
  CHECK(r.status == 1);
  CHECK_THAT(r.err, ContainsSubstring("is not a flowlab results file: it has no /trials group"));
  const auto results = flowlab::read_results(file);
  const std::string msg = flowlab::test::message_of<flowlab::Error>([&] { results.trial("lr=1,seed=0"); });
  CHECK_THAT(msg, ContainsSubstring("unknown trial 'lr=1,seed=0'"));
  CHECK_THAT(msg, ContainsSubstring("valid: lr=1.0e-2,seed=0; lr=1.0e-2,seed=1; lr=3.0e-3,seed=0; lr=3.0e-3,seed=1"));
}

TEST_CASE("steps to quality picks the cheapest row within the threshold on a hand-made file", "[report]") {
  Scratch s("hand");
  const std::string file = s.file("hand.h5");
  write_hand_made(file);
  const auto results = flowlab::read_results(file);
  auto pick = [](const flowlab::ReportGroup& g, const std::string& solver) -> std::string {
    for (const auto& p : g.picks)
      if (p.solver == solver) return p.row ? g.rows[*p.row].label : "none";
    return "absent";
  };
  {
    const auto rep = flowlab::build_report(results, {});
    REQUIRE(rep.groups.size() == 2);
    const auto& a = rep.groups[0];
    REQUIRE(a.key == std::vector<std::pair<std::string, std::string>>{{"x", "a"}});
    REQUIRE(a.reference_row);
    CHECK(a.rows[*a.reference_row].label == "dopri5:rtol=1e-05");
    CHECK(a.threshold == Catch::Approx(1.1));
    CHECK(pick(a, "euler") == "euler:steps=20");
    CHECK(pick(a, "rk4") == "rk4:steps=5");
    CHECK(pick(a, "dopri5") == "dopri5:rtol=1e-05");
    // the failed row is left out of the mean and counted
    const auto& e5 = a.rows[0];
    CHECK(e5.label == "euler:steps=5");
    CHECK(e5.n == 1);
    CHECK(e5.failed == 1);
    CHECK(e5.mean[0] == Catch::Approx(1.99));
    CHECK(std::isnan(e5.std[0]));
    CHECK(a.rows[1].mean[0] == Catch::Approx(1.2));
    CHECK(a.rows[1].std[0] == Catch::Approx(0.02 / std::sqrt(2.0)));
    const auto& b = rep.groups[1];
    REQUIRE(b.reference_row);
    CHECK(b.rows[*b.reference_row].label == "euler:steps=50");  // no adaptive rows: the most steps
    CHECK(b.threshold == Catch::Approx(2.2));
    CHECK(pick(b, "euler") == "euler:steps=20");
    CHECK(pick(b, "rk4") == "rk4:steps=10");
  }
  {
    flowlab::ReportOptions o;
    o.within = 0.25;
    const auto rep = flowlab::build_report(results, o);
    CHECK(pick(rep.groups[0], "euler") == "euler:steps=10");
    CHECK(pick(rep.groups[0], "dopri5") == "dopri5:rtol=1e-05");
    o.within = 0.01;
    const auto strict = flowlab::build_report(flowlab::read_results(file), o);
    CHECK(pick(strict.groups[1], "rk4") == "none");
  }
  const auto r = flowlab_cmd("report " + file);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, ContainsSubstring("w2 within 10% of the best converged value 1 (dopri5:rtol=1e-05)"));
  CHECK_THAT(r.out, ContainsSubstring("euler: 20 steps (20 NFE): w2 1.08"));
  CHECK_THAT(r.out, ContainsSubstring("rk4: 5 steps (20 NFE): w2 1.09"));
  CHECK_THAT(r.out, ContainsSubstring("dopri5: rtol=1e-05 (50 NFE): w2 1"));
  CHECK_THAT(r.out, ContainsSubstring("missing trials unknown: the file holds no experiment_yaml attribute"));
  const auto strict = flowlab_cmd("report " + file + " --within 0.01");
  CHECK_THAT(strict.out, ContainsSubstring("rk4: not reached (best: rk4:steps=10, 40 NFE, w2 2.15)"));
}

namespace {

/// Width and height from a PNG's IHDR chunk (bytes 16-23, big-endian); {0, 0} when it is not a PNG.
std::pair<uint32_t, uint32_t> png_size(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char h[24] = {};
  f.read(reinterpret_cast<char*>(h), sizeof h);
  if (!f || std::memcmp(h, "\x89PNG\r\n\x1a\n", 8) != 0 || std::memcmp(h + 12, "IHDR", 4) != 0) return {0, 0};
  auto be = [&](int o) { return uint32_t(h[o]) << 24 | uint32_t(h[o + 1]) << 16 | uint32_t(h[o + 2]) << 8 | uint32_t(h[o + 3]); };
  return {be(16), be(20)};
}

}  // namespace

TEST_CASE("plot writes PNGs of the requested size with their gnuplot scripts beside them", "[plot]") {
  Scratch s("plot");
  const std::string dir = s.file("plots");
  const auto r = flowlab_cmd(fmt::format("plot {} --out {} --width 640 --height 480 --run rk4:steps=4", results_file(), dir));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const std::vector<std::string> expected = {"quality_frechet_train.lr=1.0e-2", "quality_frechet_train.lr=3.0e-3", "training",
                                             "samples_lr=1.0e-2_seed=0_rk4_steps=4",
                                             "trajectories_lr=1.0e-2_seed=0_rk4_steps=4", "velocity_lr=1.0e-2_seed=0"};
  for (const auto& name : expected) {
    INFO(name);
    const std::string png = dir + "/" + name + ".png";
    REQUIRE(fs::exists(png));
    CHECK(fs::file_size(png) > 1000);
    CHECK(png_size(png) == std::pair<uint32_t, uint32_t>{640, 480});
    CHECK(fs::exists(dir + "/" + name + ".gp"));
    CHECK(fs::exists(dir + "/" + name + ".dat"));
    CHECK_THAT(r.out, ContainsSubstring(png));
  }
  // The script redraws the PNG on its own, from its directory.
  fs::remove(dir + "/training.png");
  CHECK(flowlab::test::run_command("cd " + dir + " && gnuplot training.gp").status == 0);
  CHECK(png_size(dir + "/training.png") == std::pair<uint32_t, uint32_t>{640, 480});
}

TEST_CASE("plot without gnuplot names the Debian package", "[plot]") {
  Scratch s("nognuplot");
  fs::create_directories(s.file("bin"));
  const auto r = flowlab::test::run_command(fmt::format("PATH={} FLOWLAB_PLUGIN_PATH= {} plot {} --out {}", s.file("bin"),
                                                        FLOWLAB_CLI, results_file(), s.file("plots")));
  CHECK(r.status == 1);
  CHECK_THAT(r.err, ContainsSubstring("gnuplot is not on PATH: install the Debian package gnuplot-nox"));
}

TEST_CASE("plot writes image sample grids with stb_image_write", "[plot]") {
  Scratch s("grid");
  flowlab::Array a;
  a.shape = {10, 1, 8, 8};
  a.values.assign(10 * 64, 0.0f);
  REQUIRE(flowlab::write_image_grid(a, s.file("g.png"), 8));
  CHECK(png_size(s.file("g.png")) == std::pair<uint32_t, uint32_t>{8 * 9 + 1, 2 * 9 + 1});
}

TEST_CASE("sample rebuilds the stored model and reproduces the stored Euler and RK4 samples bit for bit", "[sample]") {
  Scratch s("sample");
  const std::string& file = results_file();
  const std::string id = "lr=1.0e-2,seed=0";
  for (const auto& [solver, steps, row] : std::vector<std::tuple<std::string, int, std::string>>{{"euler", 2, "000"}, {"euler", 8, "001"}, {"rk4", 4, "002"}}) {
    INFO(solver << " " << steps);
    const std::string out = s.file(fmt::format("{}_{}.h5", solver, steps));
    const auto r = flowlab_cmd(fmt::format("sample {} --trial {} --solver {} --steps {} --from-stored-noise --out {}", file, id,
                                           solver, steps, out));
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    const auto mine = flowlab::read_array(out, "samples");
    const auto stored = flowlab::read_array(file, fmt::format("trials/{}/rows/{}/samples", id, row));
    REQUIRE(mine.shape == stored.shape);
    CHECK(mine.values == stored.values);
  }
  // fresh noise: as many samples as asked, csv with one column per dimension
  const auto r = flowlab_cmd(fmt::format("sample {} --trial {} --steps 4 --n 10 --seed 3 --out {}", file, id, s.file("s.csv")));
  INFO(r.err);
  REQUIRE(r.status == 0);
  std::ifstream f(s.file("s.csv"));
  std::string line;
  std::getline(f, line);
  CHECK(line == "x0,x1");
  int n = 0;
  while (std::getline(f, line)) ++n;
  CHECK(n == 10);
  const auto bad = flowlab_cmd(fmt::format("sample {} --trial nope --steps 4 --out {}", file, s.file("x.h5")));
  CHECK(bad.status == 1);
  CHECK_THAT(bad.err, ContainsSubstring("unknown trial 'nope'"));
  CHECK_THAT(bad.err, ContainsSubstring("valid: lr=1.0e-2,seed=0;"));
}

namespace {

/// Row `i` of a float32 [N, ...] array, as double.
std::vector<double> row(const flowlab::Array& a, int64_t i) {
  const size_t per = a.values.size() / static_cast<size_t>(a.shape[0]);
  return {a.values.begin() + static_cast<std::ptrdiff_t>(i * per), a.values.begin() + static_cast<std::ptrdiff_t>((i + 1) * per)};
}
/// The same sample: bit for bit on Debian's LibTorch (OpenBLAS); within 1e-5 relative on PyPI's torch (MKL), where
/// on an AMD EPYC a batch of 3 differed from the stored batch in the last bits (a GEMM's rounding depends on its shape).
bool same_sample(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t j = 0; j < a.size(); ++j)
    if (FLOWLAB_SYSTEM_TORCH ? a[j] != b[j] : std::abs(a[j] - b[j]) > 1e-5 * std::max(1.0, std::abs(b[j]))) return false;
  return true;
}
double norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

}  // namespace

TEST_CASE("sample --interpolate integrates noises along a slerp whose ends are plain samples", "[sample]") {
  Scratch s("interpolate");
  const std::string& file = results_file();
  const std::string id = "lr=1.0e-2,seed=0";
  for (int seed : {0, 1, 2, 3}) {
    INFO("seed " << seed);
    const std::string plain = s.file(fmt::format("plain{}.h5", seed)), interp = s.file(fmt::format("interp{}.h5", seed));
    auto r = flowlab_cmd(fmt::format("sample {} --trial {} --solver rk4 --steps 3 --n 2 --seed {} --out {}", file, id, seed, plain));
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    r = flowlab_cmd(fmt::format("sample {} --trial {} --solver rk4 --steps 3 --n 7 --seed {} --interpolate --out {}", file, id, seed, interp));
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.out, ContainsSubstring("7 samples along a slerp between two noises"));
    const auto p = flowlab::read_array(plain, "samples"), x = flowlab::read_array(interp, "samples");
    const auto noise = flowlab::read_array(interp, "noise"), w = flowlab::read_array(interp, "weights");
    REQUIRE(x.shape == std::vector<int64_t>{7, 2});
    REQUIRE(noise.shape == std::vector<int64_t>{7, 2});
    REQUIRE(w.shape == std::vector<int64_t>{7});
    // The ends are the plain samples from the same two noises: the noises are equal bit for bit, the samples to float32
    // rounding (the network's matrix products at a batch of 7 and of 2 may take BLAS kernels that round differently).
    for (const auto& [i, j] : {std::pair<int64_t, int64_t>{0, 0}, {6, 1}}) {
      const auto xi = row(x, i), pj = row(p, j);
      for (size_t k = 0; k < xi.size(); ++k) CHECK(std::abs(xi[k] - pj[k]) <= 1e-5 * (1 + std::abs(pj[k])));
    }
    // The noise path: weights i / 6, the slerp of the directions scaled by the interpolated norm, computed here.
    const auto a = row(noise, 0), b = row(noise, 6);
    const double na = norm(a), nb = norm(b);
    double cos = 0;
    for (size_t j = 0; j < a.size(); ++j) cos += a[j] * b[j] / (na * nb);
    const double theta = std::acos(cos);
    for (int64_t i = 0; i < 7; ++i) {
      INFO("row " << i);
      CHECK(w.values[static_cast<size_t>(i)] == Catch::Approx(double(i) / 6).margin(1e-7));
      const double t = double(i) / 6;
      const auto v = row(noise, i);
      for (size_t j = 0; j < a.size(); ++j) {
        const double expected =
            ((1 - t) * na + t * nb) * (std::sin((1 - t) * theta) * a[j] / na + std::sin(t * theta) * b[j] / nb) / std::sin(theta);
        CHECK(v[j] == Catch::Approx(expected).margin(1e-5));
      }
      CHECK(norm(v) >= std::min(na, nb) * (1 - 1e-6));
      CHECK(norm(v) <= std::max(na, nb) * (1 + 1e-6));
    }
  }
  // From the stored noise: the ends reproduce the trial's stored RK4 rows 0 and 1.
  const std::string out = s.file("stored.h5");
  const auto r = flowlab_cmd(fmt::format("sample {} --trial {} --solver rk4 --steps 4 --from-stored-noise --interpolate --n 3 --out {}", file, id, out));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const auto x = flowlab::read_array(out, "samples"), stored = flowlab::read_array(file, fmt::format("trials/{}/rows/002/samples", id));
  REQUIRE(x.shape == std::vector<int64_t>{3, 2});
  CHECK(same_sample(row(x, 0), row(stored, 0)));
  CHECK(same_sample(row(x, 2), row(stored, 1)));
  const auto one = flowlab_cmd(fmt::format("sample {} --trial {} --interpolate --n 1 --out {}", file, id, s.file("one.h5")));
  CHECK(one.status == 1);
  CHECK_THAT(one.err, ContainsSubstring("--interpolate: --n must be at least 2 (both ends are included)"));
}

TEST_CASE("sample --inpaint keeps the observed pixels where the mask is white and generates the rest", "[sample]") {
  Scratch s("inpaint");
  const std::string yaml = s.file("digits.yaml"), file = s.file("digits.h5");
  std::ofstream(yaml) << "name: inpaint_test\ndevices: [cpu]\ndata: {dataset: digits}\n"
                         "model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}\n"
                         "train: {steps: 5, batch_size: 16, log_every: 5}\n"
                         "eval:\n  samples: 8\n  solvers: [{solver: euler, steps: [2]}]\n  metrics: [w2]\n";
  auto r = flowlab_cmd(fmt::format("run {} --out {}", yaml, file));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const std::string id = flowlab::read_results(file).trials.at(0).id;

  // Mask: the left half known (white), the right half black. Observed: a ramp of known 8-bit values.
  flowlab::Array mask, obs;
  mask.shape = obs.shape = {1, 8, 8};
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) {
      mask.values.push_back(x < 4 ? 1.0f : -1.0f);
      obs.values.push_back(float(y * 8 + x) * 4.0f / 255.0f * 2.0f - 1.0f);
    }
  flowlab::write_image(mask, s.file("mask.png"));
  flowlab::write_image(obs, s.file("obs.png"));
  for (const std::string solver : {"euler", "rk4"}) {
    INFO(solver);
    const std::string out = s.file(solver + ".h5");
    r = flowlab_cmd(fmt::format("sample {} --trial {} --solver {} --steps 6 --n 5 --seed 2 --inpaint {} --observed {} --out {}", file, id,
                                solver, s.file("mask.png"), s.file("obs.png"), out));
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.out, ContainsSubstring("5 completions of"));
    const auto x = flowlab::read_array(out, "samples");
    REQUIRE(x.shape == std::vector<int64_t>{5, 1, 8, 8});
    for (int64_t i = 0; i < 5; ++i)
      for (int y = 0; y < 8; ++y)
        for (int xx = 0; xx < 8; ++xx) {
          const float v = x.values[static_cast<size_t>((i * 8 + y) * 8 + xx)], o = obs.values[static_cast<size_t>(y * 8 + xx)];
          INFO("sample " << i << " pixel (" << xx << ", " << y << ")");
          if (xx < 4)
            CHECK(v == Catch::Approx(o).margin(1e-6));
          else
            CHECK(std::abs(v - o) > 1e-6);
        }
    std::vector<float> known;
    for (float m : mask.values) known.push_back(m > 0 ? 1.0f : 0.0f);
    CHECK(flowlab::read_array(out, "mask").values == known);
  }
  // the PNG grid of the completions
  r = flowlab_cmd(fmt::format("sample {} --trial {} --steps 4 --n 8 --inpaint {} --observed {} --out {}", file, id, s.file("mask.png"),
                              s.file("obs.png"), s.file("grid.png")));
  INFO(r.err);
  CHECK(r.status == 0);
  CHECK(png_size(s.file("grid.png")) == std::pair<uint32_t, uint32_t>{8 * 9 + 1, 9 + 1});

  // Bad input: a mask of another size, a non-image trial, an adaptive solver.
  flowlab::Array wide;
  wide.shape = {1, 8, 10};
  wide.values.assign(80, 1.0f);
  flowlab::write_image(wide, s.file("wide.png"));
  r = flowlab_cmd(fmt::format("sample {} --trial {} --steps 4 --inpaint {} --observed {} --out {}", file, id, s.file("wide.png"),
                              s.file("obs.png"), s.file("bad.h5")));
  CHECK(r.status == 1);
  CHECK_THAT(r.err, ContainsSubstring(fmt::format("--inpaint: {} is 10x8 pixels but the trial's images are 8x8 (width x height)",
                                                  s.file("wide.png"))));
  r = flowlab_cmd(fmt::format("sample {} --trial {} --steps 4 --inpaint {} --observed {} --out {}", file, id, s.file("mask.png"),
                              s.file("wide.png"), s.file("bad.h5")));
  CHECK(r.status == 1);
  CHECK_THAT(r.err, ContainsSubstring(fmt::format("--observed: {} is 10x8 pixels but the trial's images are 8x8 (width x height)",
                                                  s.file("wide.png"))));
  r = flowlab_cmd(fmt::format("sample {} --trial lr=1.0e-2,seed=0 --steps 4 --inpaint {} --observed {} --out {}", results_file(),
                              s.file("mask.png"), s.file("obs.png"), s.file("bad.h5")));
  CHECK(r.status == 1);
  CHECK_THAT(r.err, ContainsSubstring("--inpaint: trial lr=1.0e-2,seed=0 is not an image trial (event shape [2]): inpainting needs "
                                      "images [C, H, W]"));
  r = flowlab_cmd(fmt::format("sample {} --trial {} --rtol 1e-3 --inpaint {} --observed {} --out {}", file, id, s.file("mask.png"),
                              s.file("obs.png"), s.file("bad.h5")));
  CHECK(r.status == 1);
  CHECK_THAT(r.err, ContainsSubstring("--inpaint: needs a fixed-step solver (euler, midpoint, heun or rk4 with --steps), not solver/dopri5"));
}

TEST_CASE("sample --class draws from that class of a label-conditioned model; a class it lacks is an error", "[sample][cfg]") {
  Scratch s("class");
  std::ofstream(s.file("exp.yaml")) << R"(name: classes
data: {dataset: ring_gaussians, params: {modes: 4, radius: 4.0, std: 0.2}}
model:
  condition: label
  architecture: {name: mlp, params: {width: 64, depth: 2}}
train: {steps: 400, batch_size: 256, lr: 3.0e-3, p_uncond: 0.2, log_every: 100}
eval: {samples: 100, solvers: [{solver: euler, steps: [4]}]}
sweep: {seeds: [0]}
)";
  const std::string out = s.file("classes.h5");
  auto r = flowlab_cmd(fmt::format("run {} --out {}", s.file("exp.yaml"), out));
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  // The share of samples whose nearest mode is `mode` (modes at angles 0, 90, 180 and 270 degrees, radius 4).
  auto share_of = [&](const std::string& csv, int mode) {
    std::ifstream f(csv);
    std::string line;
    std::getline(f, line);
    int n = 0, hits = 0;
    while (std::getline(f, line)) {
      const double x = std::stod(line.substr(0, line.find(','))), y = std::stod(line.substr(line.find(',') + 1));
      int best = 0;
      double best_d = 1e300;
      for (int k = 0; k < 4; ++k) {
        const double d = std::hypot(x - 4 * std::cos(k * M_PI / 2), y - 4 * std::sin(k * M_PI / 2));
        if (d < best_d) best_d = d, best = k;
      }
      ++n, hits += best == mode;
    }
    REQUIRE(n == 200);
    return double(hits) / n;
  };
  for (int mode : {0, 2}) {
    const std::string csv = s.file(fmt::format("class{}.csv", mode));
    r = flowlab_cmd(fmt::format("sample {} --trial seed=0 --class {} --guidance 2 --solver rk4 --steps 10 --n 200 --seed 1 "
                                "--out {}",
                                out, mode, csv));
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(share_of(csv, mode) > 0.8);
  }
  // Without a class the model samples every mode.
  r = flowlab_cmd(fmt::format("sample {} --trial seed=0 --solver rk4 --steps 10 --n 200 --seed 1 --out {}", out, s.file("all.csv")));
  REQUIRE(r.status == 0);
  CHECK(share_of(s.file("all.csv"), 0) < 0.5);
  r = flowlab_cmd(fmt::format("sample {} --trial seed=0 --class 7 --steps 4 --out {}", out, s.file("x.csv")));
  CHECK(r.status != 0);
  CHECK_THAT(r.err, Catch::Matchers::ContainsSubstring("--class: 7 is not a class of this model (0 to 3)"));
}

namespace {

/// A float64 attribute of `group`, or a float64 1-D dataset, read from `file`.
double attr_double(const std::string& file, const std::string& group, const std::string& name) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t a = H5Aopen_by_name(f, group.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(a >= 0);
  double v = 0;
  H5Aread(a, H5T_NATIVE_DOUBLE, &v);
  H5Aclose(a), H5Fclose(f);
  return v;
}
std::vector<double> doubles(const std::string& file, const std::string& dataset) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  REQUIRE(d >= 0);
  const hid_t sp = H5Dget_space(d);
  std::vector<double> v(static_cast<size_t>(H5Sget_simple_extent_npoints(sp)));
  H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Sclose(sp), H5Dclose(d), H5Fclose(f);
  return v;
}

}  // namespace

TEST_CASE("tune-grid: never worse than the hand grids, deterministic, printed as a list run and recorded with its checksum",
          "[tune]") {
  Scratch s("tune");
  const std::string file = s.file("r.h5");
  fs::copy_file(results_file(), file);
  const std::string id = "lr=1.0e-2,seed=0";
  const std::string cmd = fmt::format("tune-grid {} --trial {} --solver heun --steps 3 --samples 300 --out {}", file, id,
                                      s.file("grid.yaml"));
  const auto r = flowlab_cmd(cmd);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const std::string group = fmt::format("tuned_grids/{}/heun:steps=3,objective=endpoint", id);
  const std::vector<double> t = doubles(file, group + "/times");
  REQUIRE(t.size() == 4);
  CHECK(t.front() == 0.0);
  CHECK(t.back() == 1.0);
  CHECK(t[1] > t[0]);
  CHECK(t[2] > t[1]);
  CHECK(t[3] > t[2]);
  const double tuned = attr_double(file, group, "tuned");
  for (const char* hand : {"uniform", "edm[rho=7]", "shift[s=3]"}) {
    INFO(hand);
    CHECK(tuned <= attr_double(file, group, hand));
  }
  // The printed run is the recorded grid, in the shortest text that reads back to the same doubles.
  const std::string run = fmt::format("- {{solver: heun, steps: 3, grid: {{name: list, params: {{times: [{}, {}, {}, {}]}}}}}}",
                                      t[0], t[1], t[2], t[3]);
  CHECK_THAT(r.out, ContainsSubstring(run));
  std::ifstream snippet(s.file("grid.yaml"));
  std::string first, second;
  std::getline(snippet, first), std::getline(snippet, second);
  CHECK(first.rfind("# flowlab tune-grid ", 0) == 0);
  CHECK(second == run);
  CHECK(flowlab::checksum_problem(file).empty());
  // Deterministic: a second tuning records the same times.
  REQUIRE(flowlab_cmd(cmd).status == 0);
  CHECK(doubles(file, group + "/times") == t);
  const auto bad = flowlab_cmd(fmt::format("tune-grid {} --trial {} --solver dopri5", file, id));
  CHECK(bad.status == 1);
  CHECK(bad.err == "flowlab: error: tune-grid: --solver dopri5 is adaptive and chooses its own times: give a fixed-step or "
                   "multistep solver (valid: adams_bashforth, dpmpp_2m, euler, heun, heun3, midpoint, rk4, unipc)\n");
  const auto sde = flowlab_cmd(fmt::format("tune-grid {} --trial {} --solver euler_maruyama", file, id));
  CHECK(sde.status == 1);
  CHECK(sde.err == "flowlab: error: tune-grid: --solver euler_maruyama is stochastic (the objective would see one draw of "
                   "its noise): give a fixed-step or multistep solver (valid: adams_bashforth, dpmpp_2m, euler, heun, heun3, midpoint, rk4, unipc)\n");
}

TEST_CASE("run_family: a label without its step count and tolerances, brackets kept whole", "[report]") {
  const auto family = [](const std::string& label, const std::string& solver) {
    flowlab::ReportRow r;
    r.label = label;
    r.solver = solver;
    return flowlab::run_family(r);
  };
  CHECK(family("euler:steps=4", "euler") == "euler");
  CHECK(family("euler:steps=4,grid=edm", "euler") == "euler grid=edm");
  CHECK(family("euler:steps=4,grid=edm[rho=7,sigma_max=80]", "euler") == "euler grid=edm[rho=7,sigma_max=80]");
  CHECK(family("adams_bashforth:steps=2,order=2,grid=shift", "adams_bashforth") == "adams_bashforth order=2 grid=shift");
  CHECK(family("dopri5:rtol=1e-05,atol=1e-06", "dopri5") == "dopri5");
  CHECK(family("euler_maruyama:steps=7,diffusion=sigma,as_path=cosine", "euler_maruyama") ==
        "euler_maruyama diffusion=sigma as_path=cosine");
  CHECK(family("teacher", "rk4") == "rk4");
}

TEST_CASE("the method comparison: quality at 1, 2 and 4 NFE, converged, NFE within 10% of the best, training cost",
          "[report][methods]") {
  auto row = [](int64_t round, const std::string& solver, int64_t steps, int64_t nfe, double w2) {
    flowlab::EvalRow r;
    r.round = round;
    r.solver = solver;
    r.steps = steps;
    r.label = steps > 0 ? fmt::format("{}:steps={}", solver, steps) : solver + ":rtol=1e-05";
    r.rtol = steps > 0 ? std::nan("") : 1e-5;
    r.atol = r.rtol;
    r.nfe = nfe;
    r.samples_per_s = 1000;
    r.metrics = {w2};
    return r;
  };
  auto stage = [](int64_t round, flowlab::Stage s, double seconds, double calls) {
    flowlab::RoundRecord r;
    r.round = round, r.stage = s, r.train_seconds = seconds, r.train_calls = calls;
    return r;
  };
  auto trial = [](const std::string& objective, std::vector<flowlab::EvalRow> eval, std::vector<flowlab::RoundRecord> rounds) {
    flowlab::StoredTrial t;
    t.id = "objective=" + objective + ",seed=0";
    t.status = "completed";
    t.swept = {{"model.objective", objective}};
    t.metric_names = {"w2"};
    t.eval = std::move(eval);
    t.rounds = std::move(rounds);
    return t;
  };
  flowlab::StoredResults results;
  results.path = "methods.h5";
  results.trials = {
      trial("flow_matching",
            {row(0, "euler", 1, 1, 3.0), row(0, "euler", 2, 2, 1.5), row(0, "euler", 4, 4, 1.0), row(0, "dopri5", 0, 40, 0.40)},
            {stage(0, flowlab::Stage::base, 2, 1000)}),
      trial("meanflow",
            {row(0, "few_step", 1, 1, 0.6), row(0, "few_step", 2, 2, 0.43), row(0, "euler", 4, 4, 0.9),
             row(0, "dopri5", 0, 50, 0.5)},
            {stage(0, flowlab::Stage::base, 3, 1000)}),
      trial("reflow",
            {row(0, "euler", 1, 1, 2.9), row(0, "dopri5", 0, 30, 0.45), row(1, "euler", 1, 1, 0.44), row(1, "dopri5", 0, 12, 0.41)},
            {stage(0, flowlab::Stage::base, 1, 500), stage(1, flowlab::Stage::reflow, 1, 300)})};
  results.summary_columns = {"id", "model.objective"};
  const auto rep = flowlab::build_report(results, {});
  REQUIRE(rep.methods);
  const auto& m = *rep.methods;
  CHECK(m.keys == std::vector<std::string>{"model.objective", "round"});
  CHECK(m.reference_value == 0.40);
  CHECK(m.threshold == Catch::Approx(0.44));
  CHECK(m.reference == "model.objective=flow_matching, round=0 (dopri5:rtol=1e-05)");
  REQUIRE(m.lines.size() == 4);
  const auto& fm = m.lines[0];
  CHECK(fm.method == std::vector<std::string>{"flow_matching", "0"});
  CHECK((fm.at_nfe[0] == 3.0 && fm.at_nfe[1] == 1.5 && fm.at_nfe[2] == 1.0));
  CHECK(fm.converged == 0.40);
  CHECK((fm.nfe_within && *fm.nfe_within == 40));
  CHECK((fm.train_calls == 1000 && fm.train_seconds == 2));
  const auto& mf = m.lines[1];
  CHECK((mf.at_nfe[0] == 0.6 && mf.at_nfe[1] == 0.43 && mf.at_nfe[2] == 0.9));
  CHECK((mf.nfe_within && *mf.nfe_within == 2 && mf.within_run == "few_step:steps=2"));
  const auto& r0 = m.lines[2];
  CHECK(r0.method == std::vector<std::string>{"reflow", "0"});
  CHECK((r0.at_nfe[0] == 2.9 && std::isnan(r0.at_nfe[1])));
  CHECK(!r0.nfe_within);
  CHECK((r0.train_calls == 500 && r0.train_seconds == 1));
  const auto& r1 = m.lines[3];
  CHECK(r1.method == std::vector<std::string>{"reflow", "1"});
  CHECK((r1.nfe_within && *r1.nfe_within == 1));
  CHECK(r1.converged == 0.41);
  CHECK((r1.train_calls == 800 && r1.train_seconds == 2));  // round 1's cost includes round 0's
  // Printed after the groups, in both text forms.
  std::ostringstream term, md, notes;
  flowlab::write_report(rep, "term", term, notes);
  flowlab::write_report(rep, "md", md, notes);
  CHECK_THAT(term.str(), ContainsSubstring("method comparison (w2)"));
  CHECK_THAT(md.str(), ContainsSubstring("| reflow, 1 | 0.44 | - | - | 0.41 (dopri5:rtol=1e-05) | 1 (euler:steps=1) | 800 | 2.0 |"));
  // Without model.objective among the group keys there is no method comparison.
  flowlab::ReportOptions by_nothing;
  results.trials.pop_back();
  for (auto& t : results.trials) t.swept = {{"train.lr", "0.1"}};
  CHECK(!flowlab::build_report(results, by_nothing).methods);
}
