// Guard: every key an experiment file may set for a trial reaches the trial's resolved configuration, which is what
// config_hash hashes and --resume compares. A key that is read but not emitted would let --resume keep results of
// another configuration, silently. The keys come from the reader's own lists (flowlab::config_sections()); each has
// a probe here (a value other than the base's) or a reason it does not belong to a trial. A key added to the reader
// without a probe fails the first test; a probe whose value does not change the resolved configuration the second.
#include <catch2/catch_test_macros.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "flowlab/config.hpp"
#include "support.hpp"

using flowlab::test::registry;
namespace fs = std::filesystem;

namespace {

/// A section's keys and their YAML values, in order; a value "@S" is section S rendered in place.
using Section = std::vector<std::pair<std::string, std::string>>;

/// Two bases: an unconditioned trial with reflow and distillation (every stage's keys are live), and a conditioned
/// one with guidance (which reflow does not take).
std::map<std::string, Section> base_sections(bool conditioned) {
  std::map<std::string, Section> s;
  s["data"] = {{"dataset", "ring_gaussians"}};
  s["model"] = {{"architecture", "{name: mlp, params: {width: 8, depth: 1}}"}};
  s["train"] = {{"steps", "10"}, {"batch_size", "16"}};
  s["eval"] = {{"samples", "16"}, {"solvers", "[@eval.solvers[]]"}, {"metrics", "[w2]"}};
  s["eval.solvers[]"] = {{"solver", "euler"}, {"steps", "[4, 5]"}};
  if (conditioned) {
    s["model"].push_back({"condition", "label"});
    s["eval"].push_back({"guidance", "@eval.guidance"});
    s["eval.guidance"] = {{"scale", "2.0"}};
  } else {
    s["reflow"] = {{"rounds", "1"}, {"pairs", "64"}, {"train", "@reflow.train"}, {"mix", "@reflow.mix"},
                   {"teacher_solver", "@reflow.teacher_solver"}};
    s["reflow.train"] = {{"steps", "10"}};
    s["reflow.mix"] = {{"start", "0.5"}, {"end", "0.9"}};
    s["reflow.teacher_solver"] = {{"solver", "rk4"}, {"steps", "4"}};
    s["distill"] = {{"steps", "1"}, {"pairs", "64"}, {"train", "@distill.train"}};
    s["distill.train"] = {{"steps", "10"}};
  }
  return s;
}

std::string render(const std::map<std::string, Section>& s, const std::string& name) {
  std::string out = "{";
  const auto it = s.find(name);
  if (it == s.end()) return "{}";
  for (size_t i = 0; i < it->second.size(); ++i) {
    const auto& [k, v] = it->second[i];
    std::string value = v;
    if (value.rfind("[@", 0) == 0)  // "[@S]": a list of one section S
      value = "[" + render(s, value.substr(2, value.size() - 3)) + "]";
    else if (value.rfind("@", 0) == 0)  // "@S"
      value = render(s, value.substr(1));
    out += (i ? ", " : "") + k + ": " + value;
  }
  return out + "}";
}

std::string experiment_text(const std::map<std::string, Section>& s) {
  std::string text = "name: keys\n";
  for (const char* top : {"data", "model", "train", "eval", "reflow", "distill"})
    if (s.count(top)) text += std::string(top) + ": " + render(s, top) + "\n";
  return text;
}

/// Where the probe's key sits, and the value it takes there.
struct Probe {
  std::string value;
  bool conditioned = false;  ///< probed on the conditioned base (guidance keys)
};

// One probe per trial key, "section.key" -> a value other than the base's (or the default).
const std::map<std::string, Probe> kProbes = {
    {"data.dataset", {"moons"}},
    {"data.params", {"{modes: 4}"}},
    {"model.path", {"cosine"}},
    {"model.weighting", {"snr"}},
    {"model.time_sampler", {"logit_normal"}},
    {"model.noise", {"uniform"}},
    {"model.architecture", {"{name: mlp, params: {width: 12, depth: 1}}"}},
    {"model.condition", {"attr", true}},
    {"model.coupling", {"minibatch_ot"}},
    {"model.objective", {"meanflow"}},
    {"eval.samples", {"17"}},
    {"eval.use_ema", {"false"}},
    {"eval.guidance", {"3.0"}},
    {"eval.store_samples", {"5"}},
    {"eval.store_trajectories", {"2"}},
    {"eval.solvers", {"[{solver: heun, steps: [2]}]"}},
    {"eval.metrics", {"[energy]"}},
    {"eval.cuda_graph", {"true"}},
    {"eval.every", {"5"}},
    {"eval.during", {"[{solver: euler, steps: [4]}]"}},  // with every: 5, below
    {"eval.as_path", {"cosine"}},
    {"eval.ema_std", {"0.07"}},  // with train.phema, below
    {"train.phema.stds", {"[0.05]"}},
    {"train.phema.snapshots", {"3"}},
    {"eval.guidance.scale", {"3.0", true}},
    {"eval.guidance.interval", {"[0.2, 0.8]", true}},
    {"eval.guidance.ramp", {"up", true}},
    {"eval.guidance.guide", {"{step: 6}", true}},
    {"eval.guidance.guide.step", {"6", true}},
    {"eval.guidance.guide.architecture", {"{name: mlp, params: {width: 4, depth: 1}}", true}},
    {"eval.solvers[].solver", {"midpoint"}},
    {"eval.solvers[].steps", {"[6]"}},
    {"eval.solvers[].params", {"{order: 2}"}},  // with solver adams_bashforth, below
    {"eval.solvers[].grid", {"edm"}},
    {"reflow.rounds", {"2"}},
    {"reflow.pairs", {"65"}},
    {"reflow.teacher_solver", {"{solver: euler, steps: 3}"}},
    {"reflow.mix", {"{start: 0.3, end: 0.8}"}},
    {"reflow.init", {"fresh"}},
    {"reflow.train", {"{steps: 12}"}},
    {"reflow.mix.start", {"0.3"}},
    {"reflow.mix.end", {"0.8"}},
    {"reflow.teacher_solver.solver", {"heun"}},
    {"reflow.teacher_solver.steps", {"5"}},
    {"reflow.teacher_solver.params", {"{order: 2}"}},  // with solver adams_bashforth, below
    {"distill.steps", {"2"}},
    {"distill.loss", {"l1"}},
    {"distill.pairs", {"65"}},
    {"distill.train", {"{steps: 12}"}},
};

// Train keys, probed in each of the three train sections.
const std::map<std::string, std::string> kTrainProbes = {
    {"steps", "11"},      {"batch_size", "17"},        {"lr", "0.002"},    {"betas", "[0.8, 0.9]"},
    {"weight_decay", "0.01"}, {"warmup", "3"},         {"schedule", "constant"}, {"ema", "0.5"},
    {"grad_clip", "2.0"}, {"log_every", "3"},          {"checkpoint_every", "5"}, {"p_uncond", "0.2"},
    {"precision", "bf16"},    {"phema", "{stds: [0.1]}"},
};

// Keys that are not part of a trial, and why.
const std::map<std::string, std::string> kNotTrialKeys = {
    {".name", "the experiment's name, not a trial's"},
    {".output", "where results go"},
    {".devices", "where trials run; results are the same on every CPU device"},
    {".workers_per_device", "how many run at once"},
    {".threads", "threads per worker (results are the same: tested in test_runner)"},
    {".max_trial_seconds", "a time limit; a trial it stops is not a result"},
    {".limits", "limits of the sweep's size"},
    {".log", "a section of where logs go (below)"},
    {"log.tensorboard", "where TensorBoard's event files go; the results are the same"},
    {".data", "a section (its keys are probed)"},
    {".model", "a section"},
    {".train", "a section"},
    {".eval", "a section"},
    {".reflow", "a section"},
    {".distill", "a section"},
    {".sweep", "expands into the other sections' values (probed there) and the seed (below)"},
    {"limits.trials", "a limit of the sweep's size"},
    {"limits.pairs_gb", "a limit of the pairs' memory"},
    {"sweep.grid", "expands into other keys"},
    {"sweep.zip", "expands into other keys"},
    {"sweep.seeds", "the seed is in the trial's id, which --resume matches before it compares the hash"},
};

std::string resolved(const std::map<std::string, Section>& s, const std::string& name, const std::string& extra = "") {
  const fs::path p = flowlab::test::scratch_dir("flowlab_config_keys_") / (name + ".yaml");
  std::ofstream(p) << experiment_text(s) << extra;
  const auto ex = flowlab::load_experiment(p.string(), registry());
  REQUIRE(ex.trials.size() == 1);
  return ex.trials[0].resolved_yaml;
}

void set_key(std::map<std::string, Section>& s, const std::string& section, const std::string& key,
             const std::string& value) {
  Section& sec = s[section];
  for (auto& kv : sec)
    if (kv.first == key) {
      kv.second = value;
      return;
    }
  sec.push_back({key, value});
  // A subsection the base does not render yet hangs from its parent.
  const size_t dot = section.rfind('.');
  if (dot != std::string::npos && section.back() != ']') {
    const std::string parent = section.substr(0, dot), child = section.substr(dot + 1);
    bool linked = false;
    for (auto& kv : s[parent]) linked = linked || kv.first == child;
    if (!linked) s[parent].push_back({child, "@" + section});
  }
}

}  // namespace

TEST_CASE("every key the reader accepts has a probe here, or a reason it is not part of a trial",
          "[config][guard]") {
  std::vector<std::string> missing;
  for (const auto& [section, keys] : flowlab::config_sections())
    for (const auto& key : keys) {
      const std::string full = section + "." + key;
      const bool train = section == "train" || section == "reflow.train" || section == "distill.train";
      if (kProbes.count(full) || kNotTrialKeys.count(full) || (train && kTrainProbes.count(key))) continue;
      missing.push_back(full);
    }
  INFO("config keys without a probe in tests/test_config_keys.cpp (add one, and make sure the emitter writes the "
       "key, or config_hash never sees it): "
       << fmt::format("{}", fmt::join(missing, ", ")));
  CHECK(missing.empty());
}

TEST_CASE("every trial key changes the resolved configuration, so config_hash sees it", "[config][guard]") {
  std::vector<std::string> unseen;
  for (const bool conditioned : {false, true}) {
    const auto base = base_sections(conditioned);
    const std::string before = resolved(base, conditioned ? "base_cond" : "base");
    auto probe = [&](const std::string& section, const std::string& key, const std::string& value) {
      const std::string full = section + "." + key;
      // Keys that act only beside another: the reference gets that other key too, so the probe alone makes the
      // difference.
      auto reference = base;
      if (full == "eval.during") set_key(reference, "eval", "every", "5");
      if (full == "eval.ema_std") set_key(reference, "train", "phema", "{stds: [0.1]}");
      if (full == "eval.solvers[].params") set_key(reference, "eval.solvers[]", "solver", "adams_bashforth");
      if (full == "eval.guidance.guide.architecture") set_key(reference, "eval.guidance.guide", "step", "10");
      if (full == "reflow.teacher_solver.params") set_key(reference, "reflow.teacher_solver", "solver", "adams_bashforth");
      auto s = reference;
      set_key(s, section, key, value);
      std::string name = full;
      for (char& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      INFO(full << ": " << value << "\n" << experiment_text(s));
      const std::string ref = reference.size() == base.size() && experiment_text(reference) == experiment_text(base)
                                  ? before
                                  : resolved(reference, name + "_reference");
      if (resolved(s, name) == ref) unseen.push_back(full);
    };
    for (const auto& [full, p] : kProbes) {
      if (p.conditioned != conditioned) continue;
      const size_t dot = full.rfind('.');
      probe(full.substr(0, dot), full.substr(dot + 1), p.value);
    }
    if (!conditioned)
      for (const char* section : {"train", "reflow.train", "distill.train"})
        for (const auto& [key, value] : kTrainProbes) probe(section, key, value);
  }
  INFO("keys that do not reach the resolved configuration (config.cpp's emitter must write them): "
       << fmt::format("{}", fmt::join(unseen, ", ")));
  CHECK(unseen.empty());
}

TEST_CASE("the experiments in the tree hash as they did before the schema tables", "[config][guard]") {
  // tests/data/config_hashes.txt: FILE, TRIAL ID and config_hash of every trial, from commit d88b87d, regenerated
  // only where a plugin's version or a file changed on purpose (its header says which). A refactor of the reader or
  // the writers that moves one byte of a resolved configuration fails here, naming the trial.
  const fs::path root = fs::path(FLOWLAB_TEST_DATA).parent_path().parent_path();
  std::ifstream in(fs::path(FLOWLAB_TEST_DATA) / "config_hashes.txt");
  REQUIRE(in);
  std::map<std::string, std::map<std::string, std::string>> want;  // file -> trial id -> hash
  size_t count = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t a = line.find('\t'), b = line.rfind('\t');
    REQUIRE(a != b);
    want[line.substr(0, a)][line.substr(a + 1, b - a - 1)] = line.substr(b + 1);
    ++count;
  }
  CHECK(count == 213);
  // FLOWLAB_WRITE_CONFIG_HASHES=FILE: write the hashes as they are now (same files, same order) to FILE, to
  // regenerate the pin after a deliberate change (a plugin's version, a default); the header is copied by hand.
  const char* write_to = std::getenv("FLOWLAB_WRITE_CONFIG_HASHES");
  std::ofstream out;
  if (write_to) out.open(write_to);
  for (const auto& [file, trials] : want) {
    const auto ex = flowlab::load_experiment((root / file).string(), registry());
    std::map<std::string, std::string> got;
    for (const auto& t : ex.trials) got[t.id] = flowlab::config_hash(t.resolved_yaml);
    for (const auto& [id, hash] : got) out << file << '\t' << id << '\t' << hash << '\n';
    INFO(file);
    CHECK(got == trials);
  }
}
