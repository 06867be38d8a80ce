// The guard of the eval table's one list (eval_columns() in records.hpp): every column survives a write and a read
// with its value, nothing else is taken for a metric, and tests/check_hdf5_layout.py expects the same columns in the
// same order. Tried: dropping a column from the reader's handling (reading it as a metric) fails the round trip; adding
// a line to eval_columns() without the Python check fails the second case.
#include <catch2/catch_test_macros.hpp>

#include <fstream>
#include <regex>
#include <sstream>

#include "flowlab/config.hpp"
#include "flowlab/records.hpp"
#include "flowlab/report.hpp"
#include "flowlab/results.hpp"
#include "support.hpp"

TEST_CASE("every eval column is written and read back with its value; metrics stay metrics", "[results][guard]") {
  flowlab::test::ScratchDir dir("flowlab_columns");
  flowlab::TrialConfig trial;
  trial.id = "x=1,seed=0";
  flowlab::TrialResult result;
  result.id = trial.id;
  result.status = "completed";
  result.metric_names = {"w2", "energy"};
  flowlab::EvalRow row;
  // A distinct value in every fixed column, set through the table itself: a column the writer or reader skips
  // comes back as the default.
  int64_t k = 0;
  for (const auto& c : flowlab::eval_columns()) {
    ++k;
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(row.*member)>;
          if constexpr (std::is_same_v<T, std::string>) row.*member = "v" + std::to_string(k);
          else if constexpr (std::is_same_v<T, double>) row.*member = 0.5 + double(k);
          else row.*member = 100 + k;
        },
        c.member);
  }
  row.metrics = {1.25, 2.5};
  result.eval = {row};
  result.rounds = {flowlab::RoundRecord()};
  result.rounds[0].steps = row.train_step;  // the final evaluation's, not one during training
  const std::string file = dir.file("t.h5");
  flowlab::write_trial_file(file, trial, result);
  const auto stored = flowlab::read_results(file);
  REQUIRE(stored.trials.size() == 1);
  const auto& t = stored.trials[0];
  CHECK(t.metric_names == std::vector<std::string>{"w2", "energy"});
  REQUIRE(t.eval.size() == 1);
  const auto& back = t.eval[0];
  for (const auto& c : flowlab::eval_columns()) {
    INFO("column " << c.name);
    std::visit([&](auto member) { CHECK(back.*member == row.*member); }, c.member);
  }
  CHECK(back.metrics == row.metrics);
}

TEST_CASE("tests/check_hdf5_layout.py expects eval_columns() in order", "[results][guard]") {
  std::ifstream in(std::string(FLOWLAB_TEST_DATA) + "/../check_hdf5_layout.py");
  std::stringstream text;
  text << in.rdbuf();
  std::smatch m;
  const std::string s = text.str();
  REQUIRE(std::regex_search(s, m, std::regex(R"(cols = \[([^\]]*)\])")));
  std::vector<std::string> python;
  const std::string list = m[1];
  const std::regex quoted("\"([a-z0-9_]+)\"");
  for (auto it = std::sregex_iterator(list.begin(), list.end(), quoted); it != std::sregex_iterator(); ++it)
    python.push_back((*it)[1]);
  std::vector<std::string> cpp;
  for (const auto& c : flowlab::eval_columns()) cpp.push_back(c.name);
  cpp.push_back("frechet");  // layout.yaml's one metric, after the fixed columns
  CHECK(python == cpp);
}
