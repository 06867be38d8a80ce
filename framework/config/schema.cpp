// The experiment file's section tables (schema.hpp): one row per key. A new key of these sections is a member in
// config.hpp and a row here; reading, checking, the resolved configuration (config_hash), config_sections() and the
// sweep's key checks follow from the row.
#include "schema.hpp"

#include <filesystem>

#include "flowlab/choices.hpp"

namespace flowlab::schema {

const std::vector<std::string> kTeacherKeys = {"solver", "steps", "params"};

namespace {

using TrainField = Field<TrainConfig, TrialConfig>;
const std::vector<std::string> kSchedules = {"cosine", "constant"};
const std::vector<std::string> kInits = {"warm", "fresh"};
const std::vector<std::string> kDistillLosses = {"l2", "l1"};
// Upper bound that keeps a typo from running for ever.
constexpr int64_t kMaxRounds = 100;

// train.lr: in (0, 1000]. An error rather than a warning at 0: a sweep that trains nothing for hours is worse than
// a refused file.
TrainField lr_field() {
  return custom<TrainConfig, TrialConfig>(
      "lr",
      [](const Reader& r, const YAML::Node& n, const std::string& path, TrainConfig& c, TrialConfig&) {
        c.lr = r.real(n, path, 0, 1e3);
        if (c.lr == 0) r.fail(n, path, "a learning rate of 0 never moves the weights: give one in (0, 1000]");
      },
      [](YAML::Emitter& e, const TrainConfig& c, const TrialConfig&) {
        e << YAML::Key << "lr" << YAML::Value << number_text(c.lr);
      });
}

// train.betas: Adam's [beta1, beta2].
TrainField betas_field() {
  return custom<TrainConfig, TrialConfig>(
      "betas",
      [](const Reader& r, const YAML::Node& b, const std::string& path, TrainConfig& c, TrialConfig&) {
        if (!b.IsSequence() || b.size() != 2)
          r.fail(b, path, fmt::format("expected a list of 2 numbers, got {}", kind_name(b)));
        c.beta1 = r.real(b[0], path + "[0]", 0, 0.999999);
        c.beta2 = r.real(b[1], path + "[1]", 0, 0.999999);
      },
      [](YAML::Emitter& e, const TrainConfig& c, const TrialConfig&) {
        e << YAML::Key << "betas" << YAML::Value << YAML::Flow
          << std::vector<std::string>{number_text(c.beta1), number_text(c.beta2)};
      });
}

// train.phema: {stds: [...], snapshots: K} (EDM2's post-hoc EMA; defaults: stds [0.05, 0.1], 16 snapshots); written
// only when set.
TrainField phema_field() {
  return custom<TrainConfig, TrialConfig>(
             "phema",
             [](const Reader& r, const YAML::Node& ph, const std::string& path, TrainConfig& c, TrialConfig& t) {
               if (!ph.IsMap())
                 r.fail(ph, path,
                        fmt::format("expected a map {{stds: [0.05, 0.1], snapshots: 16}}, got {}", kind_name(ph)));
               c.phema_stds = {0.05, 0.1};
               c.phema_snapshots = 16;
               phema_table().read(r, ph, path, c, t);
             },
             [](YAML::Emitter& e, const TrainConfig& c, const TrialConfig& t) {
               if (c.phema_stds.empty()) return;
               e << YAML::Key << "phema" << YAML::Value << YAML::BeginMap;
               phema_table().write(e, c, t);
               e << YAML::EndMap;
             })
      .with_below(phema_table());
}

// A train section below `key` (reflow.train, distill.train): `train` with these overrides.
template <class S>
Field<S, TrialConfig> train_below(const char* key, TrainConfig S::*m) {
  return custom<S, TrialConfig>(
             key,
             [m](const Reader& r, const YAML::Node& n, const std::string& path, S& s, TrialConfig& t) {
               train_table().read(r, n, path, s.*m, t);
             },
             [key, m](YAML::Emitter& e, const S& s, const TrialConfig& t) {
               e << YAML::Key << key << YAML::Value << YAML::BeginMap;
               train_table().write(e, s.*m, t);
               e << YAML::EndMap;
             })
      .with_below(train_table());
}

// reflow.teacher_solver: {solver, steps, params}. A fixed-step solver takes `steps` (or params.steps, not both); an
// adaptive one takes none.
void read_teacher(const Reader& r, const YAML::Node& ts, const std::string& path, ReflowConfig& rf) {
  r.check_keys(ts, path, kTeacherKeys);
  if (!ts["solver"]) r.fail(ts, path, "missing key 'solver' (e.g. {solver: rk4, steps: 20})");
  const std::string name = r.text(ts["solver"], path + ".solver");
  rf.teacher.solver = r.plugin_with_params("solver", name, ts["solver"], ts["params"], path);
  const bool fixed = !r.adaptive_solver(name, ts["solver"], path + ".solver");
  rf.teacher.steps = 0;
  if (ts["steps"] && ts["params"] && ts["params"].IsMap() && ts["params"]["steps"])
    r.fail(ts["params"]["steps"], path + ".params.steps",
           "steps given twice (also as " + path + ".steps): give it once");
  if (ts["steps"]) {
    if (!fixed)
      r.fail(ts["steps"], path + ".steps",
             fmt::format("solver/{} is adaptive and takes no steps (set rtol/atol in params)", name));
    rf.teacher.steps = r.integer(ts["steps"], path + ".steps", 1);
  } else if (fixed) {
    rf.teacher.steps = rf.teacher.solver.params.integer("steps");
  }
}

}  // namespace

std::vector<double> read_ema_stds(const Reader& r, const YAML::Node& n, const std::string& path) {
  std::vector<YAML::Node> items;
  if (n.IsSequence()) {
    if (n.size() == 0) r.fail(n, path, "empty list: give at least one relative std, e.g. [0.05, 0.1]");
    for (const auto& item : n) items.push_back(item);
  } else {
    items.push_back(n);
  }
  std::vector<double> out;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string at = n.IsSequence() ? fmt::format("{}[{}]", path, i) : path;
    const double v = r.scalar<double>(items[i], at, "a number");
    if (!(v > 0 && v < kPhemaMaxStd))
      r.fail(items[i], at,
             fmt::format("{} is outside the reconstructable range of post-hoc EMA stds (0, {:.6f}): a power-function "
                         "profile's relative std is below 1/sqrt(12), the uniform average over all of training",
                         v, kPhemaMaxStd));
    if (std::find(out.begin(), out.end(), v) != out.end()) r.fail(items[i], at, fmt::format("{} is listed twice", v));
    out.push_back(v);
  }
  return out;
}

void write_numbers(YAML::Emitter& e, const char* key, const std::vector<double>& values) {
  e << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const double v : values) e << number_text(v);
  e << YAML::EndSeq;
}

const TrainTable& train_table() {
  using T = TrainConfig;
  using C = TrialConfig;
  static const TrainTable table{{
      integer<T, C>("steps", &T::steps, 0),  // 0: evaluate the model as it starts
      integer<T, C>("batch_size", &T::batch_size, 1),
      lr_field(),
      betas_field(),
      real<T, C>("weight_decay", &T::weight_decay, 0, 1e3),
      integer<T, C>("warmup", &T::warmup, 0),
      word<T, C>("schedule", &T::schedule, kSchedules, "schedule"),
      real<T, C>("ema", &T::ema, 0, 0.999999999),
      real<T, C>("grad_clip", &T::grad_clip, 0, 1e12),
      integer<T, C>("log_every", &T::log_every, 1),
      integer<T, C>("checkpoint_every", &T::checkpoint_every, 0),
      real<T, C>("p_uncond", &T::p_uncond, 0, 1),
      word<T, C>("precision", &T::precision, precisions(), "precision", Emit::unless_default),
      phema_field(),
  }};
  return table;
}

const TrainTable& phema_table() {
  using T = TrainConfig;
  using C = TrialConfig;
  static const TrainTable table{{
      custom<T, C>(
          "stds",
          [](const Reader& r, const YAML::Node& n, const std::string& path, T& c, C&) {
            c.phema_stds = read_ema_stds(r, n, path);
          },
          [](YAML::Emitter& e, const T& c, const C&) { write_numbers(e, "stds", c.phema_stds); }),
      integer<T, C>("snapshots", &T::phema_snapshots, 1, 100000),
  }};
  return table;
}

const Table<ReflowConfig, TrialConfig>& reflow_table() {
  using R = ReflowConfig;
  using C = TrialConfig;
  static const Table<R, C> table{{
      integer<R, C>("rounds", &R::rounds, 0, kMaxRounds),
      integer<R, C>("pairs", &R::pairs, 1),
      custom<R, C>(
          "teacher_solver",
          [](const Reader& r, const YAML::Node& n, const std::string& path, R& rf, C&) {
            read_teacher(r, n, path, rf);
          },
          [](YAML::Emitter& e, const R& rf, const C&) { emit_plugin(e, "teacher_solver", rf.teacher.solver); })
          .with_below(kTeacherKeys),
      custom<R, C>(
          "mix",
          [](const Reader& r, const YAML::Node& n, const std::string& path, R& rf, C& t) {
            mix_table().read(r, n, path, rf, t);
          },
          [](YAML::Emitter& e, const R& rf, const C& t) {
            e << YAML::Key << "mix" << YAML::Value << YAML::Flow << YAML::BeginMap;
            mix_table().write(e, rf, t);
            e << YAML::EndMap;
          })
          .with_below(mix_table()),
      word<R, C>("init", &R::init, kInits, "init"),
      train_below<R>("train", &R::train),
  }};
  return table;
}

const Table<ReflowConfig, TrialConfig>& mix_table() {
  using R = ReflowConfig;
  using C = TrialConfig;
  static const Table<R, C> table{{
      real<R, C>("start", &R::mix_start, 0, 1),
      real<R, C>("end", &R::mix_end, 0, 1),
  }};
  return table;
}

const Table<DistillConfig, TrialConfig>& distill_table() {
  using D = DistillConfig;
  using C = TrialConfig;
  static const Table<D, C> table{{
      integer<D, C>("steps", &D::steps, 0),  // 0 turns the stage off (a sweep compares with and without it)
      word<D, C>("loss", &D::loss, kDistillLosses, "loss"),
      integer<D, C>("pairs", &D::pairs, 1),
      // Without reflow rounds the teacher is round 0, integrated with reflow's (default) teacher solver.
      derived<D, C>("teacher_solver",
                    [](YAML::Emitter& e, const D&, const C& t) {
                      if (t.reflow.rounds == 0) emit_plugin(e, "teacher_solver", t.reflow.teacher.solver);
                    }),
      train_below<D>("train", &D::train),
  }};
  return table;
}

const Table<ExperimentLimits, Experiment>& limits_table() {
  using L = ExperimentLimits;
  using X = Experiment;
  static const Table<L, X> table{{
      integer<L, X>("trials", &L::trials, 1).not_in_trial("a limit of the sweep's size").not_swept(),
      real<L, X>("pairs_gb", &L::pairs_gb, 1e-9, 1e9).not_in_trial("a limit of the pairs' memory").not_swept(),
  }};
  return table;
}

const Table<Experiment, Experiment>& log_table() {
  using X = Experiment;
  // log.tensorboard: a directory (made when missing) of one TensorBoard run per trial.
  static const Table<X, X> table{{
      custom<X, X>(
          "tensorboard",
          [](const Reader& r, const YAML::Node& n, const std::string& path, X& ex, X&) {
            const std::string dir = r.text(n, path);
            std::error_code ec;
            const auto st = std::filesystem::status(dir, ec);
            std::string bad;
            if (dir.empty()) bad = "is empty";
            else if (dir.find('\0') != std::string::npos) bad = "holds a NUL character";
            else if (std::filesystem::exists(st) && !std::filesystem::is_directory(st))
              bad = "exists and is not a directory";
            if (!bad.empty())
              r.fail(n, path,
                     fmt::format("'{}' {}: give a directory for TensorBoard's event files, e.g. runs/{}", dir, bad,
                                 ex.name));
            ex.tensorboard = dir;
          },
          nullptr)
          .not_in_trial("where TensorBoard's event files go; the results are the same")
          .not_swept(),
  }};
  return table;
}

}  // namespace flowlab::schema
