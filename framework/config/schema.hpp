// The experiment file's schema, one table per section (not installed). A row names a key and says, in one place:
//   - how its value is read and checked (the type, the range or the valid words, with a located error);
//   - where it goes (the member of the section's struct);
//   - how it is written into the trial's resolved configuration, which config_hash hashes and --resume compares
//     (always, only when not the default, or not at all with the reason why it is not part of a trial);
//   - whether a sweep may set it, and the table below it, if any.
// The key checks (unknown keys, with the nearest valid one), reading, emitting, config_sections() and the sweep's
// key checks all derive from the rows. The tables are in schema.cpp, except model's and eval's, which are in
// config.cpp beside the readers of their plugin lists; a new YAML key is a member in config.hpp and a row.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "reader.hpp"

namespace flowlab::schema {

/// When a key's value is written into the resolved configuration.
enum class Emit {
  always,
  /// only when it differs from the default (a key added after the first release: earlier results' hashes hold)
  unless_default,
};

template <class S, class C>
struct Table;

/// One key of a section whose values live in S; C is the context the key is read in (the trial, or the experiment
/// for its run-wide sections), for checks against other sections.
template <class S, class C>
struct Field {
  using Read = std::function<void(const Reader&, const YAML::Node& value, const std::string& path, S&, C&)>;
  using Write = std::function<void(YAML::Emitter&, const S&, const C&)>;
  std::string key;
  Read read;  ///< empty: a derived entry, written (emit) but not a key of the file
  /// Called in the key's turn when the file leaves it out, with the section's node (to fill a default that needs
  /// the reader, or to fail on a required key); empty: the member keeps its default.
  Read absent;
  Write write;  ///< writes "key: value" (or nothing); empty: not part of a trial, `not_hashed` says why
  std::string not_hashed;
  bool sweep = true;  ///< a sweep axis may set it (sweep.grid / sweep.zip)
  /// When it is read: -1 before the section's other keys (they check themselves against it), 0 in row order, 1
  /// after them (it checks itself against them).
  int order = 0;
  /// The keys below it, for a key that holds a mapping (train.phema, reflow.mix): config_sections() and the
  /// sweep's key checks list them.
  std::function<std::vector<std::string>()> below;

  Field& not_swept() { return sweep = false, *this; }
  Field& when_absent(Read fill) { return absent = std::move(fill), *this; }
  Field& read_first() { return order = -1, *this; }
  Field& read_late() { return order = 1, *this; }
  Field& not_in_trial(std::string why) { return write = nullptr, not_hashed = std::move(why), *this; }
  template <class T, class D>
  Field& with_below(const Table<T, D>& table) {
    below = [&table] { return table.keys(); };
    return *this;
  }
  Field& with_below(const std::vector<std::string>& keys) {
    below = [&keys] { return keys; };
    return *this;
  }
};

/// A section: its rows, in the order its keys are listed (in messages) and read (but see Field::order) and written
/// (but see write_order).
template <class S, class C>
struct Table {
  std::vector<Field<S, C>> fields;
  /// The keys in the order the resolved configuration writes them, where earlier results' hashes fixed another
  /// order than the rows' (eval); the rows it does not name follow in row order.
  std::vector<std::string> write_order = {};

  /// The keys a file may set here.
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& f : fields)
      if (f.read) out.push_back(f.key);
    return out;
  }
  /// The keys a sweep axis may set.
  std::vector<std::string> swept_keys() const {
    std::vector<std::string> out;
    for (const auto& f : fields)
      if (f.read && f.sweep) out.push_back(f.key);
    return out;
  }
  const Field<S, C>* find(const std::string& key) const {
    for (const auto& f : fields)
      if (f.read && f.key == key) return &f;
    return nullptr;
  }
  /// Checks `n`'s keys (an unknown one fails with the nearest valid key) and reads those present into `s`, in
  /// order, the late ones last. `path`: the section's dotted path ("train", "reflow.train"; "" for the top level).
  void read(const Reader& r, const YAML::Node& n, const std::string& path, S& s, C& ctx) const {
    r.check_keys(n, path, keys());
    for (const int order : {-1, 0, 1})
      for (const auto& f : fields)
        if (f.read && f.order == order) {
          const std::string at = path.empty() ? f.key : path + "." + f.key;
          if (const YAML::Node v = n[f.key]) f.read(r, v, at, s, ctx);
          else if (f.absent) f.absent(r, n, at, s, ctx);
        }
  }
  /// Writes the section's rows into an open mapping of the resolved configuration.
  void write(YAML::Emitter& e, const S& s, const C& ctx) const {
    for (const auto& key : write_order) {
      const auto f = std::find_if(fields.begin(), fields.end(), [&](const Field<S, C>& f) { return f.key == key; });
      if (f == fields.end()) throw Error("schema: write_order names '" + key + "', which has no row");
      if (f->write) f->write(e, s, ctx);
    }
    for (const auto& f : fields)
      if (f.write && std::find(write_order.begin(), write_order.end(), f.key) == write_order.end()) f.write(e, s, ctx);
  }
};

/// A row from its key, reader and writer.
template <class S, class C>
Field<S, C> row(const char* key, typename Field<S, C>::Read read, typename Field<S, C>::Write write) {
  Field<S, C> f;
  f.key = key;
  f.read = std::move(read);
  f.write = std::move(write);
  return f;
}

/// A value written as YAML: numbers in their shortest round-trip form.
inline void put(YAML::Emitter& e, double v) { e << number_text(v); }
inline void put(YAML::Emitter& e, int64_t v) { e << v; }
inline void put(YAML::Emitter& e, bool v) { e << v; }
inline void put(YAML::Emitter& e, const std::string& v) { e << v; }

/// The writer of member `m` under `key`, as `when` says.
template <class S, class C, class T>
typename Field<S, C>::Write member_writer(const char* key, T S::*m, Emit when) {
  return [key, m, when](YAML::Emitter& e, const S& s, const C&) {
    if (when == Emit::unless_default && s.*m == S{}.*m) return;
    e << YAML::Key << key << YAML::Value;
    put(e, s.*m);
  };
}

/// An integer key in [min, max] ("expected an integer >= MIN" when max is the largest integer).
template <class S, class C>
Field<S, C> integer(const char* key, int64_t S::*m, int64_t min, int64_t max = std::numeric_limits<int64_t>::max(),
                    Emit when = Emit::always) {
  return row<S, C>(
      key,
      [m, min, max](const Reader& r, const YAML::Node& n, const std::string& path, S& s, C&) {
        s.*m = max == std::numeric_limits<int64_t>::max() ? r.integer(n, path, min) : r.integer(n, path, min, max);
      },
      member_writer<S, C>(key, m, when));
}

/// A number key in [min, max].
template <class S, class C>
Field<S, C> real(const char* key, double S::*m, double min, double max, Emit when = Emit::always) {
  return row<S, C>(
      key,
      [m, min, max](const Reader& r, const YAML::Node& n, const std::string& path, S& s, C&) {
        s.*m = r.real(n, path, min, max);
      },
      member_writer<S, C>(key, m, when));
}

/// A true/false key.
template <class S, class C>
Field<S, C> flag(const char* key, bool S::*m, Emit when = Emit::always) {
  return row<S, C>(
      key,
      [m](const Reader& r, const YAML::Node& n, const std::string& path, S& s, C&) {
        s.*m = r.scalar<bool>(n, path, "true or false");
      },
      member_writer<S, C>(key, m, when));
}

/// One of `valid` (a list that outlives the table); an unknown word fails with "unknown WHAT 'x' (valid: ...)".
template <class S, class C>
Field<S, C> word(const char* key, std::string S::*m, const std::vector<std::string>& valid, const char* what,
                 Emit when = Emit::always) {
  return row<S, C>(
      key,
      [m, &valid, what](const Reader& r, const YAML::Node& n, const std::string& path, S& s, C&) {
        const std::string v = r.text(n, path);
        if (std::find(valid.begin(), valid.end(), v) == valid.end())
          r.fail(n, path, fmt::format("unknown {} '{}' ({})", what, v, suggestion(v, valid)));
        s.*m = v;
      },
      member_writer<S, C>(key, m, when));
}

/// A key read and written by hand (a list, a plugin, a mapping, or one checked against others).
template <class S, class C>
Field<S, C> custom(const char* key, typename Field<S, C>::Read read, typename Field<S, C>::Write write) {
  return row<S, C>(key, std::move(read), std::move(write));
}

/// An entry of the resolved configuration that no key of this section sets (it is derived from other sections).
template <class S, class C>
Field<S, C> derived(const char* key, typename Field<S, C>::Write write) {
  Field<S, C> f = row<S, C>(key, nullptr, std::move(write));
  f.sweep = false;
  return f;
}

// The tables (schema.cpp).
using TrainTable = Table<TrainConfig, TrialConfig>;
const TrainTable& train_table();  ///< train, reflow.train, distill.train
const TrainTable& phema_table();  ///< train.phema
const Table<ReflowConfig, TrialConfig>& reflow_table();
const Table<ReflowConfig, TrialConfig>& mix_table();  ///< reflow.mix
const Table<DistillConfig, TrialConfig>& distill_table();
const Table<ExperimentLimits, Experiment>& limits_table();
const Table<Experiment, Experiment>& log_table();

/// Relative stds of power-function EMA profiles at `path` (train.phema.stds, eval.ema_std): a number or a list of
/// numbers, each in (0, kPhemaMaxStd), none twice.
std::vector<double> read_ema_stds(const Reader& r, const YAML::Node& n, const std::string& path);
/// Writes "key: [v, ...]" (flow style, each number in its shortest round-trip form).
void write_numbers(YAML::Emitter& e, const char* key, const std::vector<double>& values);

/// The keys of reflow.teacher_solver, read as one (its solver decides whether steps is allowed).
extern const std::vector<std::string> kTeacherKeys;

}  // namespace flowlab::schema
