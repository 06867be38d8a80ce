// Experiment files: schema checks with file:line:col locations and suggestions, plugin parameter validation
// through the registry, and sweep expansion (grid x zip x seeds) into fully resolved trials.
#include "flowlab/config.hpp"
#include "flowlab/choices.hpp"
#include "schema.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "flowlab/architecture.hpp"
#include "flowlab/coupling.hpp"
#include "flowlab/dataset.hpp"
#include "flowlab/objective.hpp"
#include "flowlab/path.hpp"
#include "flowlab/solver.hpp"
#include "flowlab/time_grid.hpp"
#include "flowlab/registry.hpp"

namespace flowlab {

using namespace schema;

ConfigError::~ConfigError() = default;

std::string nearest(const std::string& word, const std::vector<std::string>& choices) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& c : choices) {
    // Levenshtein distance
    std::vector<size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= word.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= c.size(); ++j)
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (word[i - 1] == c[j - 1] ? 0 : 1)});
      std::swap(prev, cur);
    }
    if (prev[c.size()] < best_d) best_d = prev[c.size()], best = c;
  }
  return best_d <= std::max<size_t>(2, word.size() / 3) ? best : "";
}

std::vector<RoundRecord> plan_stages(const TrialConfig& trial) {
  std::vector<RoundRecord> stages(1);
  stages[0].stage = Stage::base;
  stages[0].steps = trial.train.steps;
  for (int64_t r = 1; r <= trial.reflow.rounds; ++r) {
    RoundRecord s;
    s.round = r;
    s.stage = Stage::reflow;
    s.mix = trial.teacher_coupling ? 1.0 : trial.reflow.mix(r);  // every pair from the teacher
    s.steps = trial.reflow.train.steps;
    s.teacher = trial.reflow.teacher.label;
    stages.push_back(s);
  }
  if (trial.distill.enabled) {
    RoundRecord s;
    s.round = trial.reflow.rounds + 1;
    s.stage = Stage::distill;
    s.mix = 1.0;
    s.steps = trial.distill.train.steps;
    s.teacher = trial.reflow.teacher.label;
    stages.push_back(s);
  }
  return stages;
}

const TrainConfig& train_config(const TrialConfig& trial, Stage stage) {
  switch (stage) {
    case Stage::base: return trial.train;
    case Stage::reflow: return trial.reflow.train;
    case Stage::distill: return trial.distill.train;
  }
  throw Error(fmt::format("unknown training stage {}", static_cast<int>(stage)));
}

std::string counted(int64_t n, const std::string& noun) { return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s"); }

std::string config_hash(const std::string& resolved_yaml) {
  // 64-bit FNV-1a
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : resolved_yaml) h = (h ^ c) * 0x100000001b3ULL;
  return fmt::format("{:016x}", h);
}

namespace {

const std::vector<std::string> kTopKeys = {"name",    "output",
                                           "devices", "workers_per_device",
                                           "threads", "max_trial_seconds",
                                           "limits",  "log",
                                           "data",    "model",
                                           "train",   "eval",
                                           "reflow",  "distill",
                                           "sweep"};
// The most YAML nodes an experiment may have with its aliases expanded.
constexpr size_t kMaxNodes = 100000;
const std::vector<std::string> kConditions = {"none", "label", "attr", "both"};
const std::vector<std::string> kGuidanceKeys = {"scale", "interval", "ramp", "guide"};
const std::vector<std::string> kGuideKeys = {"step", "architecture"};
const std::vector<std::string> kSweepKeys = {"grid", "zip", "seeds"};
const std::vector<std::string> kSolverKeys = {"solver", "steps", "params", "grid"};
// Upper bound that keeps a typo from running for ever: the step count of one solver run.
constexpr int64_t kMaxSteps = 1000000;

// Rebinds `cur` to child `key`, creating a map there if needed (Node::reset, since Node assignment copies).
void descend(YAML::Node& cur, const std::string& key) {
  YAML::Node next = cur[key];
  cur.reset(next);
}

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, '.')) out.push_back(part);
  return out;
}

const Table<EvalConfig, TrialConfig>& eval_table();
const Table<TrialConfig, const Reader>& model_table();

// Checks the dotted sweep key `key` (split into `parts`) in a section whose keys are swept whole (train, eval).
template <class S, class C>
std::string check_flat_key(const schema::Table<S, C>& table, const std::vector<std::string>& parts,
                           const std::string& key, const char* setting) {
  const schema::Field<S, C>* field = table.find(parts[1]);
  if (!field || !field->sweep)
    return fmt::format("unknown key '{}' in '{}' ({})", parts[1], key, suggestion(parts[1], table.swept_keys()));
  return parts.size() == 2 ? "" : fmt::format("'{}' goes below {} setting", key, setting);
}

// Checks the dotted sweep key `key` (split into `parts`) below a section that has a table: a key with a table
// below it (reflow.train, reflow.mix) is swept one of that table's keys at a time.
template <class S, class C>
std::string check_section_key(const schema::Table<S, C>& table, const std::vector<std::string>& parts,
                              const std::string& key) {
  const std::string& s = parts[0];
  const schema::Field<S, C>* field = table.find(parts[1]);
  if (!field || !field->sweep)
    return fmt::format("unknown key '{}' in '{}' ({})", parts[1], key, suggestion(parts[1], table.swept_keys()));
  if (!field->below) return parts.size() == 2 ? "" : fmt::format("'{}' goes below a {} setting", key, s);
  const std::vector<std::string> below = field->below();
  if (parts.size() < 3) return fmt::format("'{}' names a whole section; sweep one of its keys", key);
  if (std::find(below.begin(), below.end(), parts[2]) == below.end())
    return fmt::format("unknown key '{}' in '{}' ({})", parts[2], key, suggestion(parts[2], below));
  if (parts[2] == "params")
    return parts.size() == 4 ? "" : fmt::format("sweep one parameter: {}.{}.params.NAME", s, parts[1]);
  return parts.size() == 3 ? "" : fmt::format("'{}' goes below a {}.{} setting", key, s, parts[1]);
}

// Checks a dotted sweep key against the schema; returns "" if valid, else the message.
std::string check_sweep_key(const std::string& key) {
  const auto parts = split_dots(key);
  const std::vector<std::string> sweepable = {"data", "model", "train", "eval", "reflow", "distill"};
  auto bad = [&](const std::string& part, const std::vector<std::string>& valid) {
    return fmt::format("unknown key '{}' in '{}' ({})", part, key, suggestion(part, valid));
  };
  if (parts.empty() || std::find(sweepable.begin(), sweepable.end(), parts[0]) == sweepable.end())
    return bad(parts.empty() ? "" : parts[0], sweepable);
  if (parts.size() < 2) return fmt::format("'{}' names a whole section; sweep one of its keys", key);
  const std::string& s = parts[0];
  if (s == "train") return check_flat_key(train_table(), parts, key, "a train");  // train.phema as a mapping
  if (s == "reflow") return check_section_key(reflow_table(), parts, key);
  if (s == "distill") return check_section_key(distill_table(), parts, key);
  if (s == "eval") return check_flat_key(eval_table(), parts, key, "an eval");
  const std::vector<std::string> first = s == "data" ? kDataKeys : model_table().keys();
  if (std::find(first.begin(), first.end(), parts[1]) == first.end()) return bad(parts[1], first);
  if (parts[1] == "condition") return parts.size() == 2 ? "" : "'model.condition' is a single value";
  if (s == "data")
    return parts[1] == "dataset" ? (parts.size() == 2 ? "" : "'data.dataset' is a name")
                                 : (parts.size() == 3 ? "" : "sweep one parameter: data.params.NAME");
  if (parts.size() == 2) return "";
  if (parts[2] == "name") return parts.size() == 3 ? "" : fmt::format("'{}' goes below a name", key);
  if (parts[2] == "params")
    return parts.size() == 4 ? "" : fmt::format("sweep one parameter: {}.{}.params.NAME", s, parts[1]);
  return bad(parts[2], kPluginKeys);
}

// Writes `value` at dotted `key` under `root`. For model.X.params.P on a plugin given as a bare name, the name
// is moved into {name: ...} first.
void set_path(YAML::Node root, const std::vector<std::string>& parts, const YAML::Node& value) {
  YAML::Node cur = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child = cur[parts[i]];
    if (child.IsScalar() && parts[i + 1] != "name") {  // "rectified" -> {name: rectified}
      const std::string name = child.Scalar();
      YAML::Node m(YAML::NodeType::Map);
      m["name"] = name;
      cur[parts[i]] = m;
    } else if (child.IsScalar() && parts[i + 1] == "name") {
      cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
    }
    descend(cur, parts[i]);
  }
  cur[parts.back()] = value;
}

std::string scalar_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

// A swept value as the trial id and the sweep attributes show it: its text, except a list of eval.solvers entries,
// shown by their solver names joined with '+' ("euler+few_step"), where the whole list would be a line of YAML.
std::string sweep_value_text(const std::string& key, const YAML::Node& value) {
  if (key != "eval.solvers" || !value.IsSequence()) return scalar_text(value);
  std::vector<std::string> names;
  for (const auto& entry : value)
    names.push_back(entry.IsMap() && entry["solver"] ? scalar_text(entry["solver"]) : scalar_text(entry));
  return fmt::format("{}", fmt::join(names, "+"));
}

// reflow: {rounds, pairs, teacher_solver: {solver, steps, params}, mix: {start, end}, init, train: {...}} and
// distill: {steps, loss, pairs, train: {...}} (schema.cpp's tables); both need the train section read first (their
// train overrides it). Then what the two sections say together with the model.
void read_reflow(const Reader& r, const YAML::Node& root, TrialConfig& t) {
  ReflowConfig& rf = t.reflow;
  rf.train = t.train;
  rf.teacher.solver = r.plugin_with_params("solver", "rk4", root, YAML::Node(), "reflow.teacher_solver");
  rf.teacher.steps = 20;
  if (const YAML::Node n = root["reflow"]) reflow_table().read(r, n, "reflow", rf, t);
  if (rf.teacher.steps > 0) rf.teacher.solver.params.set("steps", rf.teacher.steps);
  rf.teacher.label = rf.teacher.steps > 0 ? fmt::format("{}:steps={}", rf.teacher.solver.name, rf.teacher.steps)
                                          : rf.teacher.solver.name;
  // A coupling that pairs noise with a teacher's samples needs rounds that have a teacher.
  t.teacher_coupling = r.create<Coupling>("coupling", t.coupling)->needs_teacher();
  if (t.teacher_coupling && rf.rounds < 1) {
    const YAML::Node model = root["model"];
    r.fail(model["coupling"] ? model["coupling"] : model, "model.coupling",
           fmt::format("coupling/{} pairs noise with a teacher's samples, and this trial has no teacher: add "
                       "reflow: {{rounds: 1}} or more (round 0 trains on independent pairs, each later round on the "
                       "previous round's samples)",
                       t.coupling.name));
  }
  if (t.condition != "none" && rf.rounds > 0)
    r.fail(root["reflow"], "reflow",
           fmt::format("a conditioned model (model.condition: {}) cannot be reflowed yet: "
                       "the teacher pairs carry no condition; use model.condition: none",
                       t.condition));
  DistillConfig& d = t.distill;
  d.train = t.train;
  d.pairs = rf.pairs;
  if (const YAML::Node n = root["distill"]) {
    distill_table().read(r, n, "distill", d, t);
    d.enabled = d.steps > 0;  // steps: 0 turns the stage off (a sweep compares with and without it)
    if (t.condition != "none")
      r.fail(n, "distill",
             fmt::format("a conditioned model (model.condition: {}) cannot be distilled yet: the "
                         "teacher pairs carry no condition; use model.condition: none",
                         t.condition));
  }
}

// What a trial's datasets say about it, where they were created: a noise dataset has the data's shape, and the
// pairs reflow and distillation keep in memory fit the limit.
void check_shapes_and_memory(const Reader& r, const YAML::Node& root, const TrialConfig& t) {
  const std::vector<int64_t> shape = r.event_shape(t.data);
  if (shape.empty()) return;
  if (!t.noise_dataset.name.empty()) {
    const std::vector<int64_t> noise = r.event_shape(t.noise_dataset);
    if (noise != shape)
      r.fail(root["model"]["noise"], "model.noise",
             fmt::format("dataset/{} draws points of shape [{}], but the data (dataset/{}) has shape [{}]: the noise "
                         "must have the data's shape",
                         t.noise_dataset.name, fmt::join(noise, ", "), t.data.name, fmt::join(shape, ", ")));
  }
  int64_t values = 1;
  for (int64_t d : shape) values *= d;
  auto check = [&](const char* section, const YAML::Node& at, int64_t pairs) {
    // x0 and x1 of every pair, in float32.
    const double gb = 2.0 * 4.0 * double(values) * double(pairs) / 1e9;
    if (gb > r.limits.pairs_gb)
      r.fail(at, std::string(section) + ".pairs",
             fmt::format("{} pairs of {} values need {:.4g} GB of memory (x0 and x1 in float32), more than "
                         "limits.pairs_gb ({:g} GB): use fewer pairs, or raise limits.pairs_gb",
                         pairs, values, gb, r.limits.pairs_gb));
  };
  const YAML::Node reflow_pairs = root["reflow"] ? root["reflow"]["pairs"] : YAML::Node();
  const YAML::Node distill_pairs = root["distill"] ? root["distill"]["pairs"] : YAML::Node();
  if (t.reflow.rounds > 0 && reflow_pairs) check("reflow", reflow_pairs, t.reflow.pairs);
  if (t.distill.enabled && (distill_pairs || reflow_pairs))
    check(distill_pairs ? "distill" : "reflow", distill_pairs ? distill_pairs : reflow_pairs, t.distill.pairs);
}

// An eval run's `grid:` (fixed-step and multistep solvers only): the time_grid plugin, checked for every step count
// of the run on the trial's path (a list grid's length, a noise-level grid's path), each failure located at `grid:`.
// A list grid sets the steps (its length less one) unless they are given (`steps`, or `params.steps`).
PluginChoice read_grid(const Reader& r, const YAML::Node& g, const std::string& path, const std::string& solver,
                       bool fixed, const PluginChoice& trial_path, bool steps_given, std::vector<int64_t>& steps) {
  if (!fixed)
    r.fail(
        g, path + ".grid",
        fmt::format("solver/{} is adaptive and chooses its own times: a grid is for fixed-step and multistep solvers",
                    solver));
  const PluginChoice grid = r.plugin("time_grid", g, path + ".grid");
  const auto made = r.create<TimeGrid>("time_grid", grid);
  if (grid.name == "list" && !steps_given) steps = {static_cast<int64_t>(grid.params.float_list("times").size()) - 1};
  const auto p = r.create<Path>("path", trial_path);
  for (int64_t n : steps) {
    if (n == 0) continue;  // the solver's default steps: checked by the caller once known
    try {
      made->times(n, p.get());
    } catch (const Error& e) {
      r.fail(g, path + ".grid", e.what());
    }
  }
  return grid;
}

// A list of solver runs at `key` (eval.solvers, eval.during): each entry {solver, steps, params, grid}, lists in steps
// and params expanding into one run per value (per combination). `trial_path` is the trial's path (for grids).
// `entry`, when given, gets the index of the list entry each run comes from.
std::vector<EvalRun> read_solver_runs(const Reader& r, const YAML::Node& solvers, const std::string& key,
                                      const PluginChoice& trial_path, std::vector<size_t>* entry = nullptr) {
  std::vector<EvalRun> runs;
  if (!solvers.IsSequence() || solvers.size() == 0)
    r.fail(solvers, key,
           fmt::format("expected a non-empty list of {{solver: ..., steps: [...]}}, got {}", kind_name(solvers)));
  for (size_t i = 0; i < solvers.size(); ++i) {
    const YAML::Node s = solvers[i];
    const std::string path = fmt::format("{}[{}]", key, i);
    r.check_keys(s, path, kSolverKeys);
    if (!s["solver"]) r.fail(s, path, "missing key 'solver'");
    const std::string name = r.text(s["solver"], path + ".solver");
    // Lists in params expand into one run per combination.
    std::vector<YAML::Node> combos = {YAML::Node(YAML::NodeType::Map)};
    if (const YAML::Node params = s["params"]) {
      r.expect_map(params, path + ".params");
      for (const auto& kv : params) {
        std::vector<YAML::Node> next;
        const std::string param = r.key_text(kv.first, path + ".params");
        if (param == "steps" && s["steps"])
          r.fail(kv.first, path + ".params.steps",
                 fmt::format("steps given twice (also as {}.steps): give it once", path));
        const std::vector<YAML::Node> values = kv.second.IsSequence()
                                                   ? std::vector<YAML::Node>(kv.second.begin(), kv.second.end())
                                                   : std::vector<YAML::Node>{kv.second};
        if (values.empty()) r.fail(kv.second, path + ".params." + param, "empty list: give at least one value");
        for (const auto& v : values)
          if (!v.IsScalar())
            r.fail(v, path + ".params." + param,
                   fmt::format("expected a value or a list of values (one run each), got {} inside the list",
                               kind_name(v)));
        for (const auto& c : combos)
          for (const auto& v : values) {
            YAML::Node copy(YAML::NodeType::Map);
            for (const auto& e : c) copy[e.first] = e.second;
            copy[kv.first] = v;
            next.push_back(copy);
          }
        combos.swap(next);
      }
    }
    r.plugin_with_params("solver", name, s["solver"], YAML::Node(), path + ".solver");
    const bool fixed = !r.adaptive_solver(name, s["solver"], path + ".solver");
    std::vector<int64_t> steps = {0};
    std::vector<YAML::Node> step_nodes;  // each step count's node, where an error about it points
    if (const YAML::Node st = s["steps"]) {
      if (!fixed)
        r.fail(st, path + ".steps",
               fmt::format("solver/{} is adaptive and takes no steps (set rtol/atol in params)", name));
      const std::vector<YAML::Node> values =
          st.IsSequence() ? std::vector<YAML::Node>(st.begin(), st.end()) : std::vector<YAML::Node>{st};
      if (values.empty()) r.fail(st, path + ".steps", "empty list: give at least one step count");
      steps.clear();
      for (const auto& v : values) steps.push_back(r.integer(v, path + ".steps", 1, kMaxSteps));
      step_nodes = values;
    }
    const PluginChoice grid = s["grid"] ? read_grid(r, s["grid"], path, name, fixed, trial_path,
                                                    s["steps"] || (s["params"] && s["params"]["steps"]), steps)
                                        : PluginChoice();
    for (const auto& c : combos) {
      const PluginChoice choice = r.plugin_with_params("solver", name, s["solver"], c, path);
      for (size_t k = 0; k < steps.size(); ++k) {
        const int64_t n = steps[k];
        EvalRun run{choice, n, "", grid};
        if (fixed && n == 0) {
          run.steps = choice.params.integer("steps");
          std::vector<int64_t> default_steps = {run.steps};
          if (s["grid"]) read_grid(r, s["grid"], path, name, fixed, trial_path, true, default_steps);
        }
        if (fixed) run.solver.params.set("steps", run.steps);
        if (fixed && s["steps"]) {  // the step count against the solver's own bounds (a multistep order, say)
          try {
            r.create<Solver>("solver", run.solver);
          } catch (const ParamError& e) {
            r.fail(step_nodes.at(k), path + ".steps", e.what());
          }
        }
        runs.push_back(run);
        if (entry) entry->push_back(i);
      }
    }
  }
  return runs;
}

// Whether two plugin choices are the same plugin with the same parameters.
bool same_choice(const PluginChoice& a, const PluginChoice& b) {
  if (a.name != b.name || a.params.values().size() != b.params.values().size()) return false;
  for (const auto& [key, value] : a.params.values())
    if (!b.params.has(key) || to_string(b.params.at(key)) != to_string(value)) return false;
  return true;
}

// Whether two runs are the same solver with the same parameters (steps included) on the same grid.
bool same_run(const EvalRun& a, const EvalRun& b) {
  return same_choice(a.solver, b.solver) && same_choice(a.grid, b.grid);
}

// eval.during: solver entries as in eval.solvers, each run one of eval.solvers' runs (the evaluations during training
// are a subset of the final one, so that each run's curve ends at its final row). Kept as indices into `runs` in
// their order; listing every run is the same as listing none.
void read_during(const Reader& r, const YAML::Node& during, const PluginChoice& path_choice, EvalConfig& eval) {
  if (eval.every == 0)  // not given (eval.every is at least 1 when it is)
    r.fail(during, "eval.during",
           "needs eval.every: the runs listed here are evaluated every eval.every training steps");
  std::vector<size_t> entry;
  const std::vector<EvalRun> runs = read_solver_runs(r, during, "eval.during", path_choice, &entry);
  std::vector<size_t> picked, picked_by;
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string path = fmt::format("eval.during[{}]", entry[i]);
    const auto it =
        std::find_if(eval.runs.begin(), eval.runs.end(), [&](const EvalRun& run) { return same_run(run, runs[i]); });
    if (it == eval.runs.end()) {
      std::vector<PluginChoice> choices;
      std::vector<std::string> valid;
      for (const auto& run : eval.runs) choices.push_back(run.solver), valid.push_back(run.label);
      choices.push_back(runs[i].solver);
      r.fail(during[entry[i]], path,
             fmt::format("{} is not a run of eval.solvers (valid: {}): the runs evaluated during training are some of "
                         "the final evaluation's",
                         choice_labels(choices, {"steps", "rtol"}, ":", "").back(), fmt::join(valid, ", ")));
    }
    const size_t k = static_cast<size_t>(it - eval.runs.begin());
    const auto seen = std::find(picked.begin(), picked.end(), k);
    if (seen != picked.end())
      r.fail(during[entry[i]], path,
             fmt::format("{} is listed twice (also by eval.during[{}])", it->label,
                         picked_by[size_t(seen - picked.begin())]));
    picked.push_back(k);
    picked_by.push_back(entry[i]);
  }
  std::sort(picked.begin(), picked.end());  // evaluated in eval.solvers' order, as the final evaluation does
  eval.during = picked.size() == eval.runs.size() ? std::vector<size_t>() : picked;
}

// eval.every against each training stage's steps: a stage with fewer steps would have no evaluation during training.
void check_every(const Reader& r, const YAML::Node& root, const TrialConfig& t) {
  if (t.eval.every == 0) return;
  const YAML::Node at = root["eval"]["every"];
  auto check = [&](const char* key, int64_t steps, const char* stage) {
    if (t.eval.every > steps)
      r.fail(at, "eval.every",
             fmt::format("{} is more than {} ({}): {} would have no evaluation during training; give at most {}",
                         t.eval.every, key, steps, stage, steps));
  };
  check("train.steps", t.train.steps, "round 0");
  if (t.reflow.rounds > 0) check("reflow.train.steps", t.reflow.train.steps, "a reflow round");
  if (t.distill.enabled) check("distill.train.steps", t.distill.train.steps, "the distillation");
}

// Where a stage's phema setting is written: its own train section's, else train's (which it inherits).
YAML::Node phema_node(const YAML::Node& root, const std::string& key) {
  const YAML::Node train = root["train"];
  const size_t dot = key.find('.');
  if (dot != std::string::npos) {
    const YAML::Node section = root[key.substr(0, dot)];
    if (section && section["train"] && section["train"]["phema"]) return section["train"]["phema"];
  }
  return train && train["phema"] ? train["phema"] : root;
}

// train.phema in every stage (and the stage's steps to keep snapshots in) where eval.ema_std reconstructs from it.
void check_phema(const Reader& r, const YAML::Node& root, const TrialConfig& t) {
  auto check = [&](const char* key, const TrainConfig& c, const char* stage) {
    if (!c.phema_stds.empty() && c.steps < 1)
      r.fail(phema_node(root, key), std::string(key) + ".phema",
             fmt::format("{} trains 0 steps ({}.steps): there is nothing to average; drop {}.phema", stage, key, key));
    if (!t.eval.ema_stds.empty() && c.phema_stds.empty())
      r.fail(root["eval"]["ema_std"], "eval.ema_std",
             fmt::format("{} keeps no post-hoc EMA snapshots to reconstruct from: add {}.phema: {{stds: [0.05, 0.1]}}",
                         stage, key));
  };
  check("train", t.train, "round 0");
  if (t.reflow.rounds > 0) check("reflow.train", t.reflow.train, "a reflow round");
  if (t.distill.enabled) check("distill.train", t.distill.train, "the distillation");
}

// eval.guidance: a weight w (constant), or {scale: w, interval: [t_lo, t_hi]} (w inside, plain conditional outside), or
// {scale: w, ramp: up|down} (w(t) = 1 + (w - 1) t, or 1 + (w - 1) (1 - t)). The schedules need a conditioned model.
void read_guidance(const Reader& r, const YAML::Node& g, TrialConfig& t) {
  if (!g.IsMap()) {
    t.eval.guidance = r.real(g, "eval.guidance", -1e6, 1e6);
    return;
  }
  r.check_keys(g, "eval.guidance", kGuidanceKeys);
  if (!g["scale"]) r.fail(g, "eval.guidance", "missing key 'scale' (the guidance weight w)");
  t.eval.guidance = r.real(g["scale"], "eval.guidance.scale", -1e6, 1e6);
  if (g["interval"] && g["ramp"])
    r.fail(g["ramp"], "eval.guidance.ramp", "give one schedule: an interval or a ramp, not both");
  if (const YAML::Node in = g["interval"]) {
    if (!in.IsSequence() || in.size() != 2)
      r.fail(in, "eval.guidance.interval", fmt::format("expected [t_lo, t_hi], got {}", kind_name(in)));
    const double lo = r.real(in[0], "eval.guidance.interval[0]", 0, 1),
                 hi = r.real(in[1], "eval.guidance.interval[1]", 0, 1);
    if (!(lo < hi))
      r.fail(in, "eval.guidance.interval",
             fmt::format("t_lo ({}) must be below t_hi ({})", number_text(lo), number_text(hi)));
    t.eval.guidance_interval = {lo, hi};
    t.eval.guidance_schedule = "interval";
  }
  if (const YAML::Node ramp = g["ramp"]) {
    t.eval.guidance_schedule = r.text(ramp, "eval.guidance.ramp");
    if (t.eval.guidance_schedule != "up" && t.eval.guidance_schedule != "down")
      r.fail(ramp, "eval.guidance.ramp", fmt::format("unknown ramp '{}' (valid: up, down)", t.eval.guidance_schedule));
  }
  if (const YAML::Node guide = g["guide"]) {
    r.check_keys(guide, "eval.guidance.guide", kGuideKeys);
    if (!guide["step"] && !guide["architecture"])
      r.fail(guide, "eval.guidance.guide",
             "missing key 'step' or 'architecture' (the training step of round 0 whose weights guide, or a smaller "
             "architecture trained beside round 0)");
    if (const YAML::Node arch = guide["architecture"])
      t.eval.guide_architecture = r.plugin("architecture", arch, "eval.guidance.guide.architecture");
    t.eval.guide_step =
        guide["step"] ? r.integer(guide["step"], "eval.guidance.guide.step", 0, 1000000000000) : t.train.steps;
    if (t.eval.guide_step > t.train.steps)
      r.fail(
          guide["step"], "eval.guidance.guide.step",
          fmt::format("round 0 trains {} steps (train.steps), so the snapshot at step {} is never kept: give 0 to {}",
                      t.train.steps, t.eval.guide_step, t.train.steps));
    if (t.eval.cuda_graph)
      r.fail(guide, "eval.guidance.guide",
             "autoguidance evaluates a second model, which flowlab does not capture in a CUDA "
             "graph: set eval.cuda_graph: false");
  }
  if (t.condition == "none" && t.eval.guidance_schedule != "constant" && t.eval.guide_step < 0)
    r.fail(g, "eval.guidance",
           "a guidance schedule steers classifier-free guidance, which needs a conditioned model "
           "(model.condition: label, attr or both)");
  if (t.eval.cuda_graph && t.eval.guidance_schedule != "constant")
    r.fail(g, "eval.guidance",
           "a guidance schedule reads each time on the host, which a CUDA graph cannot capture: set "
           "eval.cuda_graph: false");
}

// Whether `objective` is flow_matching with its default parameters, which the resolved document leaves out (so the
// hashes of trials from before the objective plugin kind hold).
bool is_default_objective(const Reader& r, const PluginChoice& objective) {
  if (objective.name != "flow_matching") return false;
  const PluginChoice def =
      r.plugin_with_params("objective", "flow_matching", YAML::Node(), YAML::Node(), "model.objective");
  return def.params.values() == objective.params.values();
}

// The training objective against the architecture and the coupling: a few-step objective needs an architecture with
// a step input, and one that refuses teacher pairs refuses coupling/reflow.
void check_objective(const Reader& r, const YAML::Node& model, const TrialConfig& t) {
  const auto objective = r.create<Objective>("objective", t.objective);
  const YAML::Node at = model["objective"] ? model["objective"] : model;
  if (objective->step_input() && !r.create<Architecture>("architecture", t.architecture)->has_step_input()) {
    std::vector<std::string> with;
    for (const auto& info : r.registry().list("architecture")) {
      try {
        if (r.registry().create<Architecture>("architecture", info.name)->has_step_input()) with.push_back(info.name);
      } catch (const std::exception&) {  // one that needs parameters to be created (torchscript's file) has none
      }
    }
    r.fail(at, "model.objective",
           fmt::format("objective/{} trains a network with a step input (the step size d), which architecture/{} "
                       "lacks (architectures with one: {})",
                       t.objective.name, t.architecture.name, fmt::join(with, ", ")));
  }
  if (const std::string spec = objective->features(); !spec.empty()) {
    const auto& forms = feature_extractor_forms();
    if (std::find(forms.begin(), forms.end(), spec) == forms.end() &&
        !(spec.rfind("torchscript:", 0) == 0 && spec.size() > 12)) {
      const YAML::Node p = at.IsMap() && at["params"] && at["params"]["features"] ? at["params"]["features"] : at;
      r.fail(p, "model.objective.params.features",
             fmt::format("'{}' is not a feature extractor (valid: {})", spec, fmt::join(forms, ", ")));
    }
  }
  if (!objective->accepts_teacher_pairs() && r.create<Coupling>("coupling", t.coupling)->needs_teacher()) {
    std::vector<std::string> valid;
    for (const auto& info : r.registry().list("coupling"))
      if (!r.registry().create<Coupling>("coupling", info.name)->needs_teacher()) valid.push_back(info.name);
    r.fail(model["coupling"] ? model["coupling"] : at, "model.coupling",
           fmt::format("objective/{} learns its own few-step map from (noise, data) pairs; coupling/{}'s teacher "
                       "pairs make no sense with it (valid couplings: {})",
                       t.objective.name, t.coupling.name, fmt::join(valid, ", ")));
  }
}

// Solvers that step with the model's average velocity (Solver::uses_step_field) need a model with a step input.
void check_step_solvers(const Reader& r, const YAML::Node& solvers, const TrialConfig& t) {
  const bool step_model = r.create<Objective>("objective", t.objective)->step_input();
  for (size_t i = 0; i < solvers.size(); ++i) {
    const std::string name = solvers[i]["solver"].Scalar();
    const auto run =
        std::find_if(t.eval.runs.begin(), t.eval.runs.end(), [&](const EvalRun& e) { return e.solver.name == name; });
    if (run == t.eval.runs.end() || !r.create<Solver>("solver", run->solver)->uses_step_field()) continue;
    if (step_model && t.eval.guide_step >= 0)
      r.fail(solvers[i]["solver"], fmt::format("eval.solvers[{}].solver", i),
             fmt::format("solver/{} steps with the average velocity, which autoguidance (eval.guidance.guide) does "
                         "not guide: drop the guide or use a velocity solver",
                         name));
    if (step_model) continue;
    std::vector<std::string> with;
    for (const auto& info : r.registry().list("objective"))
      if (r.registry().create<Objective>("objective", info.name)->step_input()) with.push_back(info.name);
    r.fail(solvers[i]["solver"], fmt::format("eval.solvers[{}].solver", i),
           fmt::format("solver/{} steps with the model's step input, which objective/{} does not train (objectives "
                       "with one: {})",
                       name, t.objective.name, fmt::join(with, ", ")));
  }
}

// The model section's table: its plugins, each with its default where the file leaves it out, the condition and
// the architecture (required). Its context is the reader, which writing the objective needs.
const Table<TrialConfig, const Reader>& model_table() {
  using T = TrialConfig;
  using R = const Reader;
  // A plugin of kind `key` in member `m`, `def` with its default parameters when left out.
  auto plugin = [](const char* key, PluginChoice T::*m, const char* def) {
    return custom<T, R>(
               key,
               [key, m](const Reader& r, const YAML::Node& n, const std::string& path, T& t, R&) {
                 t.*m = r.plugin(key, n, path);
               },
               [key, m](YAML::Emitter& e, const T& t, R&) { emit_plugin(e, key, t.*m); })
        .when_absent([key, m, def](const Reader& r, const YAML::Node& model, const std::string& path, T& t, R&) {
          t.*m = r.plugin_with_params(key, def, model, YAML::Node(), path);
        });
  };
  static const Table<T, R> table{{
      plugin("path", &T::path, "rectified"),
      plugin("weighting", &T::weighting, "uniform"),
      plugin("time_sampler", &T::time_sampler, "uniform"),
      // Any dataset as the base distribution: model.noise: {dataset: eight_gaussians, params: {...}}.
      custom<T, R>(
          "noise",
          [](const Reader& r, const YAML::Node& n, const std::string& path, T& t, R&) {
            if (n.IsMap() && n["dataset"]) {
              t.noise_dataset = r.plugin("dataset", n, path, "dataset");
              t.noise = r.plugin_with_params("noise", "gaussian", n, YAML::Node(), path);
            } else {
              t.noise = r.plugin("noise", n, path);
            }
          },
          [](YAML::Emitter& e, const T& t, R&) {
            if (t.noise_dataset.name.empty()) return emit_plugin(e, "noise", t.noise);
            e << YAML::Key << "noise" << YAML::Value << YAML::BeginMap;
            emit_plugin(e, "dataset", t.noise_dataset);
            e << YAML::EndMap;
          })
          .when_absent([](const Reader& r, const YAML::Node& model, const std::string& path, T& t, R&) {
            t.noise = r.plugin_with_params("noise", "gaussian", model, YAML::Node(), path);
          }),
      custom<T, R>(
          "architecture",
          [](const Reader& r, const YAML::Node& n, const std::string& path, T& t, R&) {
            t.architecture = r.plugin("architecture", n, path);
          },
          [](YAML::Emitter& e, const T& t, R&) { emit_plugin(e, "architecture", t.architecture); })
          .when_absent([](const Reader& r, const YAML::Node& model, const std::string& path, T&, R&) {
            r.fail(model, path, "missing key 'architecture' (e.g. {name: mlp})");
          }),
      word<T, R>("condition", &T::condition, kConditions, "condition"),
      plugin("coupling", &T::coupling, "independent"),
      custom<T, R>(
          "objective",
          [](const Reader& r, const YAML::Node& n, const std::string& path, T& t, R&) {
            t.objective = r.plugin("objective", n, path);
          },
          [](YAML::Emitter& e, const T& t, R& r) {
            if (!is_default_objective(r, t.objective)) emit_plugin(e, "objective", t.objective);  // earlier hashes hold
          })
          .when_absent([](const Reader& r, const YAML::Node& model, const std::string& path, T& t, R&) {
            t.objective = r.plugin_with_params("objective", "flow_matching", model, YAML::Node(), path);
          }),
  }};
  return table;
}

// model: the model_table's keys, then the objective against the architecture and the coupling.
void read_model(const Reader& r, const YAML::Node& root, TrialConfig& t) {
  if (!root["model"]) r.fail(root, "model", "missing section 'model' (at least model.architecture)");
  const YAML::Node model = root["model"];
  model_table().read(r, model, "model", t, r);
  check_objective(r, model, t);
}

// eval.metrics: the metric plugins, their feature extractors and solvers checked, and their unique labels.
void read_metrics(const Reader& r, const YAML::Node& metrics, TrialConfig& t) {
  if (!metrics.IsSequence())
    r.fail(metrics, "eval.metrics", fmt::format("expected a list of metric names, got {}", kind_name(metrics)));
  for (size_t i = 0; i < metrics.size(); ++i)
    t.eval.metrics.push_back(r.plugin("metric", metrics[i], fmt::format("eval.metrics[{}]", i)));
  for (size_t i = 0; i < t.eval.metrics.size(); ++i) {
    const PluginChoice& m = t.eval.metrics[i];
    if (!m.params.has("features")) continue;
    const std::string& spec = m.params.str("features");
    const auto& forms = feature_extractor_forms();
    const bool ok = std::find(forms.begin(), forms.end(), spec) != forms.end() ||
                    (spec.rfind("torchscript:", 0) == 0 && spec.size() > 12);
    if (!ok) {
      const YAML::Node& mi = metrics[i];
      const YAML::Node where = mi.IsMap() && mi["params"] && mi["params"]["features"] ? mi["params"]["features"] : mi;
      r.fail(where, fmt::format("eval.metrics[{}].params.features", i),
             fmt::format("'{}' is not a feature extractor (valid: {})", spec, fmt::join(forms, ", ")));
    }
  }
  // metric/nll integrates with a solver named by its `solver` parameter: it must be one.
  for (size_t i = 0; i < t.eval.metrics.size(); ++i) {
    const PluginChoice& m = t.eval.metrics[i];
    if (m.name != "nll") continue;
    const YAML::Node& mi = metrics[i];
    const YAML::Node where = mi.IsMap() && mi["params"] && mi["params"]["solver"] ? mi["params"]["solver"] : mi;
    r.plugin_with_params("solver", m.params.str("solver"), where, YAML::Node(),
                         fmt::format("eval.metrics[{}].params.solver", i));
  }
  t.eval.metric_labels = choice_labels(t.eval.metrics, {}, "[", "]");
  for (size_t i = 0; i < t.eval.metric_labels.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (t.eval.metric_labels[i] == t.eval.metric_labels[j])
        r.fail(metrics[i], fmt::format("eval.metrics[{}]", i),
               fmt::format("the same metric as eval.metrics[{}] ({})", j, t.eval.metric_labels[i]));
}

// The labels of eval.solvers' runs ("euler:steps=4", "dopri5:rtol=0.001,grid=edm"): unique, or the list is refused.
void label_runs(const Reader& r, const YAML::Node& solvers, TrialConfig& t) {
  std::vector<PluginChoice> choices;
  for (const auto& run : t.eval.runs) choices.push_back(run.solver);
  auto labels = choice_labels(choices, {"steps", "rtol"}, ":", "");
  // Runs on a grid: ",grid=NAME" (":grid=NAME" when the solver shows no parameter), the grid's parameters in
  // brackets where two grids of that name differ: "euler:steps=4,grid=edm", "heun:steps=8,grid=shift[s=3]".
  std::vector<PluginChoice> grids;
  for (const auto& run : t.eval.runs)
    if (!run.grid.name.empty()) grids.push_back(run.grid);
  const auto grid_labels = choice_labels(grids, {}, "[", "]");
  for (size_t i = 0, g = 0; i < labels.size(); ++i)
    if (!t.eval.runs[i].grid.name.empty())
      labels[i] += (labels[i].find(':') == std::string::npos ? ":grid=" : ",grid=") + grid_labels[g++];
  if (!t.eval.as_path.name.empty())  // "euler:steps=4,as_path=cosine": sampled on another path's schedule
    for (auto& l : labels) l += (l.find(':') == std::string::npos ? ":as_path=" : ",as_path=") + t.eval.as_path.name;
  for (size_t i = 0; i < labels.size(); ++i) {
    t.eval.runs[i].label = labels[i];
    for (size_t j = 0; j < i; ++j)
      if (labels[i] == labels[j])
        r.fail(solvers, "eval.solvers",
               fmt::format("two runs are the same ({}): list each solver setting once", labels[i]));
  }
}

// eval.as_path: sample the model as if trained on another affine path (schedule_transform.hpp).
void read_as_path(const Reader& r, const YAML::Node& as, const std::string& path, TrialConfig& t) {
  t.eval.as_path = r.plugin("path", as, path);
  if (t.eval.cuda_graph)
    r.fail(as, path, "matches each time on the host, which a CUDA graph cannot capture: set eval.cuda_graph: false");
  if (!r.create<Path>("path", t.path)->affine() || !r.create<Path>("path", t.eval.as_path)->affine())
    r.fail(as, path,
           fmt::format("the schedule transform maps one affine path (x_t = alpha_t x1 + sigma_t x0) to another, and "
                       "path/{} is not affine",
                       r.create<Path>("path", t.path)->affine() ? t.eval.as_path.name : t.path.name));
}

// The path eval's solvers see: eval.as_path when given, else the model's.
const PluginChoice& sampled_path(const TrialConfig& t) { return t.eval.as_path.name.empty() ? t.path : t.eval.as_path; }

// eval.solvers: the runs, checked against the objective's step input, and their labels.
void read_runs(const Reader& r, const YAML::Node& solvers, const std::string& path, EvalConfig& ev, TrialConfig& t) {
  ev.runs = read_solver_runs(r, solvers, path, sampled_path(t));
  check_step_solvers(r, solvers, t);
  label_runs(r, solvers, t);
}

// eval.guidance in the resolved configuration: the weight, and its schedule and guide only when set (earlier hashes
// hold).
void write_guidance(YAML::Emitter& e, const EvalConfig& ev, const TrialConfig&) {
  e << YAML::Key << "guidance" << YAML::Value << number_text(ev.guidance);
  if (ev.guidance_schedule == "interval")
    e << YAML::Key << "guidance_interval" << YAML::Value << YAML::Flow << YAML::BeginSeq
      << number_text(ev.guidance_interval[0]) << number_text(ev.guidance_interval[1]) << YAML::EndSeq;
  else if (ev.guidance_schedule != "constant") e << YAML::Key << "guidance_ramp" << YAML::Value << ev.guidance_schedule;
  if (ev.guide_step >= 0) e << YAML::Key << "guidance_guide_step" << YAML::Value << ev.guide_step;
  if (!ev.guide_architecture.name.empty()) emit_plugin(e, "guidance_guide_architecture", ev.guide_architecture);
}

// eval.solvers as `runs` (each run's solver, and its grid only when set: earlier hashes hold), eval.metrics.
void write_runs(YAML::Emitter& e, const EvalConfig& ev, const TrialConfig&) {
  e << YAML::Key << "runs" << YAML::Value << YAML::BeginSeq;
  for (const auto& run : ev.runs) {
    e << YAML::BeginMap;
    emit_plugin(e, "solver", run.solver);
    if (!run.grid.name.empty()) emit_plugin(e, "grid", run.grid);
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;
}
void write_metrics(YAML::Emitter& e, const EvalConfig& ev, const TrialConfig&) {
  e << YAML::Key << "metrics" << YAML::Value << YAML::BeginSeq;
  for (const auto& m : ev.metrics) {
    e << YAML::BeginMap;
    emit_plugin(e, "metric", m);
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;
}

// eval.during (with eval.every), eval.as_path and eval.ema_std, each only when set.
void write_during(YAML::Emitter& e, const EvalConfig& ev, const TrialConfig&) {
  if (ev.every == 0 || ev.during.empty()) return;
  e << YAML::Key << "during" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (size_t k : ev.during) e << ev.runs[k].label;
  e << YAML::EndSeq;
}
void write_as_path(YAML::Emitter& e, const EvalConfig& ev, const TrialConfig&) {
  if (!ev.as_path.name.empty()) emit_plugin(e, "as_path", ev.as_path);
}
void write_ema_stds(YAML::Emitter& e, const EvalConfig& ev, const TrialConfig&) {
  if (!ev.ema_stds.empty()) write_numbers(e, "ema_std", ev.ema_stds);
}

// eval.every: evaluate during training, which needs runs to evaluate.
void read_every(const Reader& r, const YAML::Node& n, const std::string& path, EvalConfig& ev, TrialConfig&) {
  ev.every = r.integer(n, path, 1);
  if (ev.runs.empty())
    r.fail(n, path, "there are no eval.solvers to evaluate during training: list them in eval.solvers");
}

// The eval section's table: its plugin lists (solvers, metrics, as_path, guidance) are read by the functions above,
// so it lives here rather than in schema.cpp. Its rows are in the order its keys are listed; the resolved
// configuration writes them in the order earlier results' hashes fixed (write_order).
const Table<EvalConfig, TrialConfig>& eval_table() {
  using E = EvalConfig;
  using T = TrialConfig;
  using Node = YAML::Node;
  static const Table<E, T> table{
      {
          integer<E, T>("samples", &E::samples, 2),
          flag<E, T>("use_ema", &E::use_ema),
          custom<E, T>(
              "guidance", [](const Reader& r, const Node& g, const std::string&, E&, T& t) { read_guidance(r, g, t); },
              write_guidance),
          integer<E, T>("store_samples", &E::store_samples, -1).not_swept(),
          integer<E, T>("store_trajectories", &E::store_trajectories, 0).not_swept(),
          custom<E, T>("solvers", read_runs, write_runs),
          custom<E, T>(
              "metrics", [](const Reader& r, const Node& m, const std::string&, E&, T& t) { read_metrics(r, m, t); },
              write_metrics)
              .not_swept(),
          flag<E, T>("cuda_graph", &E::cuda_graph, Emit::unless_default).read_first(),
          custom<E, T>("every", read_every, member_writer<E, T>("every", &E::every, Emit::unless_default)).read_late(),
          custom<E, T>(
              "during",
              [](const Reader& r, const Node& n, const std::string&, E& ev, T& t) {
                read_during(r, n, sampled_path(t), ev);
              },
              write_during)
              .read_late()
              .not_swept(),
          custom<E, T>(
              "as_path",
              [](const Reader& r, const Node& as, const std::string& path, E&, T& t) { read_as_path(r, as, path, t); },
              write_as_path)
              .read_first(),
          custom<E, T>(
              "ema_std",
              [](const Reader& r, const Node& n, const std::string& path, E& ev, T&) {
                ev.ema_stds = read_ema_stds(r, n, path);
              },
              write_ema_stds),
      },
      {"samples", "use_ema", "guidance", "store_samples", "store_trajectories", "cuda_graph", "as_path", "ema_std",
       "every", "during", "solvers", "metrics"}};
  return table;
}

// The resolved configuration's reflow and distill sections, only when used, so that the configurations (and
// hashes) of trials without them stay as they were.
void emit_stages(YAML::Emitter& e, const TrialConfig& t) {
  if (t.reflow.rounds > 0) {
    e << YAML::Key << "reflow" << YAML::Value << YAML::BeginMap;
    reflow_table().write(e, t.reflow, t);
    e << YAML::EndMap;
  }
  if (t.distill.enabled) {
    e << YAML::Key << "distill" << YAML::Value << YAML::BeginMap;
    distill_table().write(e, t.distill, t);
    e << YAML::EndMap;
  }
}

// The resolved configuration (every plugin parameter included): what config_hash hashes. Keys added after the
// first release are written only when set, so that earlier results' hashes hold.
std::string resolved_yaml(const Reader& r, const TrialConfig& t) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  emit_plugin(e, "data", t.data);
  e << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  model_table().write(e, t, r);
  e << YAML::EndMap;
  e << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  train_table().write(e, t.train, t);
  e << YAML::EndMap;
  e << YAML::Key << "eval" << YAML::Value << YAML::BeginMap;
  eval_table().write(e, t.eval, t);
  e << YAML::EndMap;
  emit_stages(e, t);
  e << YAML::EndMap;
  return e.c_str();
}

TrialConfig read_trial(const Reader& r, const YAML::Node& root, bool documents = true) {
  TrialConfig t;
  if (!root["data"]) r.fail(root, "data", "missing section 'data' (e.g. data: {dataset: ring_gaussians})");
  t.data = r.plugin("dataset", root["data"], "data", "dataset");
  read_model(r, root, t);
  if (const YAML::Node tr = root["train"]) train_table().read(r, tr, "train", t.train, t);
  if (const YAML::Node ev = root["eval"]) eval_table().read(r, ev, "eval", t.eval, t);
  read_reflow(r, root, t);
  check_every(r, root, t);
  check_phema(r, root, t);
  check_shapes_and_memory(r, root, t);
  if (documents) t.resolved_yaml = resolved_yaml(r, t);
  return t;
}

// Duplicate keys at any level are errors naming both places (yaml-cpp keeps both pairs; a lookup would take one).
// `budget` bounds the nodes visited: aliases make a few lines stand for billions of nodes (an "alias bomb").
void check_duplicates(const Reader& r, const YAML::Node& n, const std::string& path, size_t& budget) {
  if (budget-- == 0)
    r.fail(n, path.empty() ? "(top level)" : path,
           fmt::format("the document has more than {} nodes once its aliases are expanded: flowlab reads at most {}",
                       kMaxNodes, kMaxNodes));
  if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) check_duplicates(r, n[i], fmt::format("{}[{}]", path, i), budget);
  } else if (n.IsMap()) {
    std::map<std::string, YAML::Mark> seen;
    for (const auto& kv : n) {
      const std::string key = r.key_text(kv.first, path);
      const std::string child = path.empty() ? key : path + "." + key;
      const auto [it, fresh] = seen.emplace(key, kv.first.Mark());
      if (!fresh)
        r.fail(
            kv.first, child,
            fmt::format("duplicate key '{}' (first at line {}:{})", key, it->second.line + 1, it->second.column + 1));
      check_duplicates(r, kv.second, child, budget);
    }
  }
}

struct Axis {
  std::string key;
  std::vector<std::string> parts;
  std::vector<YAML::Node> values;
};

}  // namespace

std::vector<std::string> choice_labels(const std::vector<PluginChoice>& choices, const std::vector<std::string>& always,
                                       const std::string& sep_open, const std::string& sep_close) {
  std::vector<std::string> out;
  for (const auto& c : choices) {
    std::vector<std::string> keys;
    for (const auto& a : always)
      if (c.params.has(a)) keys.push_back(a);
    for (const auto& [key, value] : c.params.values()) {
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
      for (const auto& other : choices)
        if (other.name == c.name && (!other.params.has(key) || to_string(other.params.at(key)) != to_string(value))) {
          keys.push_back(key);
          break;
        }
    }
    std::vector<std::string> parts;
    for (const auto& k : keys) parts.push_back(k + "=" + to_string(c.params.at(k)));
    out.push_back(parts.empty() ? c.name : c.name + sep_open + fmt::format("{}", fmt::join(parts, ",")) + sep_close);
  }
  return out;
}

namespace {

// output: a results file path: not empty, not a directory, not a special file, no NUL (the OS would cut it there).
void read_output(const Reader& r, const YAML::Node& root, Experiment& ex) {
  ex.output = root["output"] ? r.text(root["output"], "output") : "results/" + ex.name + ".h5";
  if (!root["output"]) return;
  const std::string& o = ex.output;
  const std::string base = std::filesystem::path(o).filename().string();
  std::error_code ec;
  const auto st = std::filesystem::status(o, ec);
  std::string bad;
  if (o.empty()) bad = "is empty";
  else if (o.find('\0') != std::string::npos) bad = "holds a NUL character";
  else if (o.back() == '/' || base.empty() || base == "." || base == "..") bad = "names a directory, not a file";
  else if (std::filesystem::is_directory(st)) bad = "is an existing directory";
  else if (std::filesystem::exists(st) && !std::filesystem::is_regular_file(st)) bad = "is an existing special file";
  if (!bad.empty())
    r.fail(root["output"], "output",
           fmt::format("'{}' {}: give the path of a results file, e.g. results/{}.h5", o, bad, ex.name));
}

void read_devices(const Reader& r, const YAML::Node& root, Experiment& ex) {
  const YAML::Node d = root["devices"];
  if (!d) {
    ex.devices = {"auto"};
    return;
  }
  if (d.IsScalar()) ex.devices = {r.text(d, "devices")};
  else if (d.IsSequence() && d.size() > 0)
    for (size_t i = 0; i < d.size(); ++i) ex.devices.push_back(r.text(d[i], fmt::format("devices[{}]", i)));
  else
    r.fail(d, "devices",
           fmt::format("expected auto or a list such as [cpu] or [cuda:0, cuda:1], got {}", kind_name(d)));
  for (size_t i = 0; i < ex.devices.size(); ++i) {
    const std::string& dev = ex.devices[i];
    const bool ok =
        dev == "auto" || dev == "cpu" ||
        (dev.rfind("cuda:", 0) == 0 && dev.size() > 5 && dev.find_first_not_of("0123456789", 5) == std::string::npos);
    if (!ok)
      r.fail(d.IsScalar() ? d : d[i], "devices", fmt::format("unknown device '{}' (valid: auto, cpu, cuda:N)", dev));
  }
}

void read_limits(const Reader& r, const YAML::Node& root, Experiment& ex) {
  if (const YAML::Node n = root["limits"]) limits_table().read(r, n, "limits", ex.limits, ex);
}

// log: where the trials' logs go beside the results.
void read_log(const Reader& r, const YAML::Node& root, Experiment& ex) {
  if (const YAML::Node n = root["log"]) log_table().read(r, n, "log", ex, ex);
}

/// The sweep axes: grid keys cross, zip keys pair, seeds multiply.
struct Sweep {
  std::vector<Axis> grid, zip;
  /// sweep.grid has an eval.ema_std axis: folded into each trial's eval.ema_std list (one trial, trained once)
  /// instead of multiplying the trials.
  bool ema_std = false;
  std::vector<int64_t> seeds = {0};
  size_t zip_len() const { return zip.empty() ? 1 : zip.front().values.size(); }
};

void read_axes(const Reader& r, const YAML::Node& sw, const char* section, std::vector<Axis>& out) {
  const YAML::Node axes = sw[section];
  if (!axes) return;
  r.expect_map(axes, fmt::format("sweep.{}", section));
  for (const auto& kv : axes) {
    Axis a;
    a.key = r.key_text(kv.first, fmt::format("sweep.{}", section));
    const std::string path = fmt::format("sweep.{}.{}", section, a.key);
    const std::string bad = check_sweep_key(a.key);
    if (!bad.empty()) r.fail(kv.first, path, bad);
    a.parts = split_dots(a.key);
    if (!kv.second.IsSequence())
      r.fail(kv.second, path, fmt::format("expected a list of values, got {}", kind_name(kv.second)));
    if (kv.second.size() == 0) r.fail(kv.second, path, "empty list: give at least one value");
    for (const auto& v : kv.second) a.values.push_back(v);
    out.push_back(a);
  }
}

Sweep read_sweep(const Reader& r, const YAML::Node& root) {
  Sweep s;
  const YAML::Node sw = root["sweep"];
  if (!sw) return s;
  r.check_keys(sw, "sweep", kSweepKeys);
  read_axes(r, sw, "grid", s.grid);
  read_axes(r, sw, "zip", s.zip);
  for (const auto& z : s.zip)
    for (const auto& g : s.grid)
      if (z.key == g.key)
        r.fail(sw["zip"], "sweep.zip." + z.key,
               fmt::format("{} is also a sweep.grid axis: give each key to one of grid and zip", z.key));
  for (const auto& a : s.zip)
    if (a.key == "eval.ema_std")
      r.fail(sw["zip"]["eval.ema_std"], "sweep.zip.eval.ema_std",
             "post-hoc EMA stds are evaluated within each trial from its snapshots, at no training cost, so they "
             "cannot be zipped with other keys: put eval.ema_std under sweep.grid, or list the stds in eval.ema_std");
  const auto ema_axis =
      std::find_if(s.grid.begin(), s.grid.end(), [](const Axis& a) { return a.key == "eval.ema_std"; });
  if (ema_axis != s.grid.end()) {
    if (root["eval"] && root["eval"]["ema_std"])
      r.fail(sw["grid"]["eval.ema_std"], "sweep.grid.eval.ema_std",
             "eval.ema_std is also given in the eval section: give the stds once");
    s.grid.erase(ema_axis);
    s.ema_std = true;
  }
  for (const auto& a : s.zip)
    if (a.values.size() != s.zip.front().values.size())
      r.fail(sw["zip"], "sweep.zip",
             fmt::format("zip lists must have equal lengths: {} has {}, {} has {}", s.zip.front().key,
                         s.zip.front().values.size(), a.key, a.values.size()));
  if (const YAML::Node seeds = sw["seeds"]) {
    if (!seeds.IsSequence())
      r.fail(seeds, "sweep.seeds", fmt::format("expected a list of integers, got {}", kind_name(seeds)));
    if (seeds.size() == 0) r.fail(seeds, "sweep.seeds", "empty list: give at least one seed");
    s.seeds.clear();
    std::set<int64_t> seen;
    for (size_t i = 0; i < seeds.size(); ++i) {
      s.seeds.push_back(r.integer(seeds[i], "sweep.seeds", 0));
      if (!seen.insert(s.seeds.back()).second)
        r.fail(seeds[i], "sweep.seeds", fmt::format("seed {} appears twice", s.seeds.back()));
    }
  }
  return s;
}

// The trial count, computed before any trial is built: a sweep over the limit is refused with its count.
void check_trial_count(const Reader& r, const YAML::Node& root, const Sweep& s, int64_t limit) {
  long double count = static_cast<long double>(s.zip_len()) * static_cast<long double>(s.seeds.size());
  std::vector<std::string> factors;
  for (const auto& a : s.grid) {
    count *= static_cast<long double>(a.values.size());
    factors.push_back(fmt::format("{} ({})", a.values.size(), a.key));
  }
  if (!s.zip.empty()) factors.push_back(fmt::format("{} (zip)", s.zip_len()));
  factors.push_back(fmt::format("{} (seeds)", s.seeds.size()));
  if (count <= static_cast<long double>(limit)) return;
  r.fail(root["sweep"], "sweep",
         fmt::format("{:.0f} trials ({}) is more than limits.trials ({}): shrink the sweep, or raise limits.trials",
                     static_cast<double>(count), fmt::join(factors, " x "), limit));
}

// One trial per grid row x zip row x seed: the last grid key varies fastest, then zip rows, then seeds. Seeds share
// their document, so each grid x zip combination is read (and its plugins checked) once. That document is a copy
// of the parsed tree, which is fast but has no source positions: where it has an error, the text is parsed again
// so that the message gets its file:line:column.
void expand_trials(const Reader& r, const YAML::Node& root, const Sweep& s, const std::function<YAML::Node()>& parse,
                   bool documents, Experiment& ex) {
  std::vector<Axis> axes = s.grid;
  axes.insert(axes.end(), s.zip.begin(), s.zip.end());
  // Short names for ids: the last key component, or the whole key where two axes share it.
  std::map<std::string, int> last_count;
  for (const auto& a : axes) ++last_count[a.parts.back()];
  auto short_name = [&](const Axis& a) { return last_count[a.parts.back()] > 1 ? a.key : a.parts.back(); };
  size_t combos = s.zip_len();
  for (const auto& a : s.grid) combos *= a.values.size();
  ex.trials.reserve(combos * s.seeds.size());
  std::set<std::string> ids;
  YAML::Node unswept = YAML::Clone(root);  // the document without its sweep, copied once per combination
  unswept.remove("sweep");
  for (size_t c = 0; c < combos; ++c) {
    std::vector<size_t> row(s.grid.size());
    size_t rest = c / s.zip_len();
    for (size_t g = s.grid.size(); g-- > 0;) row[g] = rest % s.grid[g].values.size(), rest /= s.grid[g].values.size();
    std::vector<std::string> id_parts;
    // `sweep`: where the values come from (the parsed document's own sweep section, or the root's, copied).
    auto build = [&](YAML::Node doc, const YAML::Node& sweep, bool copy_values) {
      std::vector<std::pair<std::string, std::string>> swept;
      id_parts.clear();
      auto apply = [&](const Axis& a, const char* section, size_t idx) {
        const YAML::Node value = sweep[section][a.key][idx];
        set_path(doc, a.parts, copy_values ? YAML::Clone(value) : value);
        std::string v = sweep_value_text(a.key, value);
        swept.emplace_back(a.key, v);
        std::replace(v.begin(), v.end(), '/', '_');
        id_parts.push_back(short_name(a) + "=" + v);
      };
      for (size_t g = 0; g < s.grid.size(); ++g) apply(s.grid[g], "grid", row[g]);
      if (s.ema_std) {  // the whole axis, as the trial's list
        const YAML::Node stds = sweep["grid"]["eval.ema_std"];
        set_path(doc, {"eval", "ema_std"}, copy_values ? YAML::Clone(stds) : stds);
      }
      for (const auto& a : s.zip) apply(a, "zip", c % s.zip_len());
      TrialConfig t = read_trial(r, doc, documents);
      doc.remove("sweep");
      if (documents) t.source_yaml = YAML::Dump(doc);
      t.swept = swept;
      return t;
    };
    TrialConfig base;
    try {
      base = build(YAML::Clone(unswept), root["sweep"], true);
    } catch (const ConfigError&) {
      const YAML::Node doc = parse();
      base = build(doc, doc["sweep"], false);  // throws again, now with the position
    }
    for (int64_t seed : s.seeds) {
      ex.trials.push_back(base);
      TrialConfig& t = ex.trials.back();
      t.seed = seed;
      id_parts.push_back(fmt::format("seed={}", seed));
      t.id = fmt::format("{}", fmt::join(id_parts, ","));
      id_parts.pop_back();
      if (!ids.insert(t.id).second)
        r.fail(root["sweep"], "sweep",
               fmt::format("two trials would share the id '{}': the sweep repeats a value", t.id));
    }
  }
}

}  // namespace

Experiment load_experiment(const std::string& file, const Registry& registry, bool documents) {
  std::ifstream in(file);
  if (!in) throw ConfigError(fmt::format("{}: cannot read experiment file ({})", file, std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  return load_experiment_text(file, ss.str(), registry, documents);
}

Experiment load_experiment_text(const std::string& file, const std::string& text, const Registry& registry,
                                bool documents) {
  Experiment ex;
  ex.file = file;
  ex.text = text;
  auto parse = [&] {
    try {
      return YAML::Load(ex.text);
    } catch (const YAML::ParserException& e) {
      throw ConfigError(
          fmt::format("{}:{}:{}: YAML syntax error: {}", file, e.mark.line + 1, e.mark.column + 1, e.msg));
    }
  };
  Reader r(file, registry);
  const YAML::Node root = parse();
  if (!root.IsMap())
    r.fail(root, "(top level)", fmt::format("expected a mapping of sections, got {}", kind_name(root)));
  size_t budget = kMaxNodes;
  check_duplicates(r, root, "", budget);
  r.check_keys(root, "", kTopKeys);
  if (!root["name"]) r.fail(root, "name", "missing key 'name' (the experiment's name)");
  ex.name = r.text(root["name"], "name");
  // The name becomes a file name (results/<name>.h5): a plain identifier, never a path.
  if (ex.name.empty() || ex.name == "." || ex.name == ".." ||
      ex.name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") !=
          std::string::npos)
    r.fail(root["name"], "name",
           fmt::format("'{}' is not a plain name: use letters, digits, '-', '_' and '.' (set output: to choose a path)",
                       ex.name));
  read_output(r, root, ex);
  read_devices(r, root, ex);
  if (root["workers_per_device"])
    ex.workers_per_device = r.integer(root["workers_per_device"], "workers_per_device", 1);
  if (root["threads"]) ex.threads = r.integer(root["threads"], "threads", 1);
  if (root["max_trial_seconds"]) ex.max_trial_seconds = r.real(root["max_trial_seconds"], "max_trial_seconds", 0, 1e9);
  read_limits(r, root, ex);
  read_log(r, root, ex);
  r.limits = ex.limits;
  const Sweep sweep = read_sweep(r, root);
  check_trial_count(r, root, sweep, ex.limits.trials);
  expand_trials(r, root, sweep, parse, documents, ex);
  ex.plugins_checked = r.plugins_checked();
  // CUDA graphs on devices that are all CPUs can never run: refused here. With `auto`, a trial that lands on a
  // CPU samples eagerly and records cuda_graph "off".
  const bool cpu_only =
      std::all_of(ex.devices.begin(), ex.devices.end(), [](const std::string& d) { return d == "cpu"; });
  for (const auto& t : ex.trials)
    if (cpu_only && t.eval.cuda_graph) {
      const YAML::Node at = root["eval"] && root["eval"]["cuda_graph"] ? root["eval"]["cuda_graph"] : root["devices"];
      r.fail(at, "eval.cuda_graph",
             "CUDA graphs need a GPU, but devices lists only cpu (use devices: auto or cuda:N, or cuda_graph: false)");
    }
  return ex;
}

std::string trial_snapshot(const TrialConfig& t) {
  YAML::Emitter e;
  e << YAML::BeginMap << YAML::Key << "flowlab_trial" << YAML::Value << 1;
  e << YAML::Key << "id" << YAML::Value << YAML::DoubleQuoted << t.id;
  e << YAML::Key << "seed" << YAML::Value << t.seed;
  e << YAML::Key << "swept" << YAML::Value << YAML::BeginSeq;
  for (const auto& [k, v] : t.swept)
    e << YAML::Flow << YAML::BeginSeq << YAML::DoubleQuoted << k << YAML::DoubleQuoted << v << YAML::EndSeq;
  e << YAML::EndSeq;
  e << YAML::Key << "config" << YAML::Value << YAML::Literal << t.source_yaml << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

TrialConfig load_trial_snapshot(const std::string& file, const Registry& registry) {
  std::ifstream in(file);
  if (!in) throw ConfigError(fmt::format("{}: cannot read trial snapshot ({})", file, std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  const Reader r(file, registry, /*datasets=*/false);
  YAML::Node root, doc;
  try {
    root = YAML::Load(ss.str());
    if (!root.IsMap() || !root["flowlab_trial"] || !root["id"] || !root["seed"] || !root["config"])
      throw ConfigError(fmt::format("{}: not a flowlab trial snapshot (flowlab_trial, id, seed, swept, config)", file));
    doc = YAML::Load(root["config"].as<std::string>());
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}:{}: trial snapshot: {}", file, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  TrialConfig t = read_trial(r, doc);
  t.source_yaml = root["config"].as<std::string>();
  t.id = root["id"].as<std::string>();
  t.seed = root["seed"].as<int64_t>();
  if (const YAML::Node sw = root["swept"])
    for (const auto& kv : sw) t.swept.emplace_back(kv[0].as<std::string>(), kv[1].as<std::string>());
  return t;
}

const std::vector<std::pair<std::string, std::vector<std::string>>>& config_sections() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> sections = {
      {"", kTopKeys},
      {"limits", limits_table().keys()},
      {"log", log_table().keys()},
      {"data", kDataKeys},
      {"model", model_table().keys()},
      {"train", train_table().keys()},
      {"train.phema", phema_table().keys()},
      {"eval", eval_table().keys()},
      {"eval.guidance", kGuidanceKeys},
      {"eval.guidance.guide", kGuideKeys},
      {"eval.solvers[]", kSolverKeys},
      {"reflow", reflow_table().keys()},
      {"reflow.mix", mix_table().keys()},
      {"reflow.teacher_solver", kTeacherKeys},
      {"reflow.train", train_table().keys()},
      {"distill", distill_table().keys()},
      {"distill.train", train_table().keys()},
      {"sweep", kSweepKeys},
  };
  return sections;
}

}  // namespace flowlab
