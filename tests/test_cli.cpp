// The flowlab CLI: listing, describe, help, version and bad usage (exit codes and exact messages).
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <string>

#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::Matches;
using Catch::Matchers::StartsWith;

namespace {

using Run = flowlab::test::CommandResult;

Run run(const std::string& args) {
  return flowlab::test::run_command(std::string("FLOWLAB_PLUGIN_PATH= ") + FLOWLAB_CLI + " " + args);
}

const std::string kGood = std::string("--plugin-path ") + FLOWLAB_TEST_PLUGIN_ROOT + "/good";

}  // namespace

TEST_CASE("flowlab plugins prints a table with kind, name, version, description and file", "[cli]") {
  const Run r = run(kGood + " plugins noise");
  CHECK(r.status == 0);
  CHECK_THAT(r.out, Matches("KIND +NAME +VERSION +DESCRIPTION +FILE\n(.|\n)*"));
  CHECK_THAT(r.out, Matches("(.|\n)*\nnoise +test_const +0\\.3\\.1 +constant noise for tests +" +
                            std::string(FLOWLAB_TEST_PLUGIN_ROOT) + "/good/libtest_good\\.so\n(.|\n)*"));
  // Columns line up: every row has its name where the header has NAME.
  const auto header_end = r.out.find('\n');
  const auto name_col = r.out.find("NAME");
  const auto row = r.out.find("test_const");
  const auto row_start = r.out.rfind('\n', row) + 1;
  CHECK(row - row_start == name_col);
  CHECK(r.out.find("DESCRIPTION") < header_end);
  CHECK_THAT(r.out, ContainsSubstring("noise  gaussian"));
  CHECK(r.out.find("solver") == std::string::npos);
  const Run all = run("plugins");
  CHECK_THAT(all.out, Matches("(.|\\n)*\\nsolver +rk4 +1\\.0\\.0 +classic Runge-Kutta, order 4, 4 NFE per step +[^\\n]*/libflowlab_solvers\\.so\\n(.|\\n)*"));
}

TEST_CASE("flowlab describe prints each parameter with type, default and doc", "[cli]") {
  const Run r = run(kGood + " describe noise/test_const");
  CHECK(r.status == 0);
  CHECK(r.out == "noise/test_const 0.3.1: constant noise for tests\n"
                 "file: " + std::string(FLOWLAB_TEST_PLUGIN_ROOT) + "/good/libtest_good.so\n"
                 "parameters:\n"
                 "  NAME     TYPE             DEFAULT    DOC\n"
                 "  value    float            1.5        the constant\n"
                 "  count    int              2          a multiplier\n"
                 "  flag     bool             false      a flag\n"
                 "  mode     enum(fast|slow)  fast       a choice\n"
                 "  label    string           hello      a string\n"
                 "  sizes    int_list         1,2,2      a list of ints\n"
                 "  weights  float_list       0.5, 0.25  a list of floats\n");
  const Run none = run(kGood + " describe solver/test_double");
  CHECK_THAT(none.out, ContainsSubstring("parameters: none\n"));
}

TEST_CASE("bad usage gives a one-line error on stderr and a non-zero exit", "[cli]") {
  Run r = run("describe solver/rk5");
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: unknown solver 'rk5' (valid: dopri5, euler, heun, midpoint, rk4)\n");
  r = run("plugins solvers");
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: unknown plugin kind 'solvers' (valid: path, weighting, time_sampler, noise, "
                 "architecture, solver, dataset, metric, coupling)\n");
  r = run("describe rk4");
  CHECK(r.err == "flowlab: error: expected KIND/NAME, got 'rk4' (e.g. solver/rk4)\n");
  r = run("");
  CHECK(r.status == 2);
  CHECK(r.err == "flowlab: error: A subcommand is required (see 'flowlab --help')\n");
  r = run("plugins --frobnicate");
  CHECK(r.status == 2);
  CHECK(r.err == "flowlab: error: The following argument was not expected: --frobnicate (see 'flowlab --help')\n");
}

TEST_CASE("--help on every subcommand and --version", "[cli]") {
  CHECK_THAT(run("--version").out, StartsWith("flowlab 0."));
  for (const char* sub : {"plugins", "describe"}) {
    const Run r = run(std::string(sub) + " --help");
    CHECK(r.status == 0);
    CHECK_THAT(r.out, ContainsSubstring("Usage:"));
  }
}

TEST_CASE("scan problems are warnings on stderr, listing goes on", "[cli]") {
  const Run r = run(kGood + " --plugin-path /nonexistent/dir plugins noise");
  CHECK(r.status == 0);
  CHECK(r.err == "flowlab: warning: /nonexistent/dir: plugin directory does not exist\n");
  CHECK_THAT(r.out, ContainsSubstring("test_const"));
}
