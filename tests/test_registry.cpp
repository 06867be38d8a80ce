// Registry: discovery, listing without running code, lifetime, and every error path with its message.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "flowlab/noise.hpp"
#include "flowlab/registry.hpp"
#include "support.hpp"
#include "flowlab/solver.hpp"

using Catch::Matchers::ContainsSubstring;
namespace fs = std::filesystem;

using flowlab::test::max_abs;
using flowlab::test::message_of;
using flowlab::test::registry;

namespace {

std::string dir(const std::string& group) { return std::string(FLOWLAB_TEST_PLUGIN_ROOT) + "/" + group; }
std::string lib(const std::string& group, const std::string& target) { return dir(group) + "/lib" + target + ".so"; }


}  // namespace

TEST_CASE("registry lists several plugins from one library with their records", "[registry]") {
  flowlab::Registry reg({dir("good")}, false);
  CHECK(reg.problems().empty());
  const auto all = reg.list();
  REQUIRE(all.size() == 2);
  CHECK(all[0].key() == "noise/test_const");  // kinds in canonical order: noise before solver
  CHECK(all[1].key() == "solver/test_double");
  CHECK(all[0].version == "0.3.1");
  CHECK(all[0].description == "constant noise for tests");
  CHECK(all[0].file == lib("good", "test_good"));
  REQUIRE(all[0].params.size() == 7);
  CHECK(all[0].params[3].type_name() == "enum(fast|slow)");
  CHECK(all[0].params[5].default_text == "1,2,2");
  CHECK(reg.list("solver").size() == 1);
  CHECK(reg.list("path").empty());
}

TEST_CASE("created plugins get resolved parameters with defaults and typed values", "[registry]") {
  flowlab::Registry reg({dir("good")}, false);
  flowlab::Params raw;
  raw.set("value", std::string("0.25")).set("count", std::int64_t{4}).set("mode", std::string("slow"));
  auto noise = reg.create<flowlab::Noise>("noise", "test_const", raw);
  const auto x = noise->sample({2, 3}, at::kDouble);
  CHECK(x.sum().item<double>() == 6.0);  // 0.25 * 4 * 6 elements
  const auto resolved = reg.resolve("noise", "test_const", raw);
  CHECK(resolved.str("mode") == "slow");
  CHECK(resolved.str("label") == "hello");
  CHECK(resolved.int_list("sizes") == std::vector<std::int64_t>{1, 2, 2});
  CHECK(resolved.float_list("weights") == std::vector<double>{0.5, 0.25});
  CHECK(resolved.boolean("flag") == false);
}

TEST_CASE("an instance keeps its library loaded after the registry is gone", "[registry]") {
  std::shared_ptr<flowlab::Solver> solver;
  {
    flowlab::Registry reg({dir("good")}, false);
    solver = reg.create<flowlab::Solver>("solver", "test_double");
  }
  const auto x = at::ones({3, 2}, at::kDouble);
  const auto out = solver->sample(x, [](const at::Tensor& y, const at::Tensor&) { return y; });
  CHECK(out.x.sum().item<double>() == 12.0);
  CHECK(out.nfe == 1);
}

TEST_CASE("listing runs no plugin code", "[registry]") {
  const fs::path marker = fs::temp_directory_path() / "flowlab_marker_test";
  fs::remove(marker);
  ::setenv("FLOWLAB_TEST_MARKER", marker.c_str(), 1);
  {
    flowlab::Registry reg({dir("marker")}, false);
    REQUIRE(reg.list().size() == 1);
    CHECK(reg.info("noise", "marker").description == "static initialiser writes a marker");
    CHECK_FALSE(fs::exists(marker));
    auto noise = reg.create<flowlab::Noise>("noise", "marker");  // creating does load it
    CHECK(fs::exists(marker));
  }
  ::unsetenv("FLOWLAB_TEST_MARKER");
  fs::remove(marker);
}

TEST_CASE("unknown name lists the valid names of that kind", "[registry][errors]") {
  flowlab::Registry reg({dir("good")}, false);
  CHECK(message_of<flowlab::PluginNotFoundError>([&] { reg.info("solver", "rk5"); }) ==
        "unknown solver 'rk5' (valid: test_double)");
  CHECK(message_of<flowlab::PluginNotFoundError>([&] { reg.info("path", "x"); }) == "unknown path 'x' (valid: none)");
  CHECK(message_of<flowlab::PluginNotFoundError>([&] { reg.info("solvers", "x"); }) ==
        "unknown plugin kind 'solvers' (valid: path, weighting, time_sampler, noise, architecture, solver, dataset, "
        "metric, coupling, time_grid, objective)");
}

TEST_CASE("unknown parameter lists the known parameters with their types", "[registry][errors]") {
  flowlab::Registry reg({dir("good")}, false);
  flowlab::Params raw;
  raw.set("valeu", 1.0);
  CHECK(message_of<flowlab::ParamError>([&] { reg.create<flowlab::Noise>("noise", "test_const", raw); }) ==
        "noise/test_const: parameter 'valeu' is unknown (known: value float, count int, flag bool, mode "
        "enum(fast|slow), label string, sizes int_list, weights float_list)");
}

TEST_CASE("ill-typed parameters name the expected type", "[registry][errors]") {
  flowlab::Registry reg({dir("good")}, false);
  flowlab::Params raw;
  raw.set("count", 2.5);
  CHECK_THAT(message_of<flowlab::ParamError>([&] { reg.create<flowlab::Noise>("noise", "test_const", raw); }),
             ContainsSubstring("noise/test_const: parameter 'count' expects int, got float 2.5 (known: value float,"));
  flowlab::Params text;
  text.set("count", std::string("many"));
  CHECK_THAT(message_of<flowlab::ParamError>([&] { reg.create<flowlab::Noise>("noise", "test_const", text); }),
             ContainsSubstring("parameter 'count' expects int, got string many"));
  flowlab::Params choice;
  choice.set("mode", std::string("medium"));
  CHECK(message_of<flowlab::ParamError>([&] { reg.create<flowlab::Noise>("noise", "test_const", choice); }) ==
        "noise/test_const: parameter 'mode' must be one of fast, slow, got 'medium'");
  flowlab::Params flag;
  flag.set("flag", std::int64_t{1});
  CHECK_THAT(message_of<flowlab::ParamError>([&] { reg.create<flowlab::Noise>("noise", "test_const", flag); }),
             ContainsSubstring("parameter 'flag' expects bool, got int 1"));
}

TEST_CASE("API version mismatch names the file and both versions", "[registry][errors]") {
  flowlab::Registry reg({dir("bad_api")}, false);
  REQUIRE(reg.problems().size() == 1);
  CHECK(reg.problems()[0] == lib("bad_api", "test_bad_api") +
                                 ": plugin solver/bad_api was built for plugin API version 999, but this flowlab "
                                 "supports version " + std::to_string(FLOWLAB_API_VERSION) + "; skipped");
  CHECK(reg.list().empty());
  CHECK(message_of<flowlab::ApiVersionError>([&] { reg.create<flowlab::Solver>("solver", "bad_api"); }) ==
        "solver/bad_api: " + lib("bad_api", "test_bad_api") +
            " was built for plugin API version 999, but this flowlab supports version " +
            std::to_string(FLOWLAB_API_VERSION));
}

TEST_CASE("duplicate kind/name names both files", "[registry][errors]") {
  flowlab::Registry reg({dir("dup")}, false);
  const std::string a = lib("dup", "test_dup_a"), b = lib("dup", "test_dup_b");
  REQUIRE(reg.problems().size() == 1);
  CHECK(reg.problems()[0] == "duplicate plugin noise/dup: declared in " + a + " and in " + b);
  CHECK(message_of<flowlab::DuplicatePluginError>([&] { reg.create<flowlab::Noise>("noise", "dup"); }) ==
        "duplicate plugin noise/dup: declared in " + a + " and in " + b);
}

TEST_CASE("a later search location shadows a plugin, with a note; listing marks the shadowed one", "[registry]") {
  const fs::path tmp = fs::temp_directory_path() / ("flowlab_shadow_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string mine = (tmp / "libmy_good.so").string();
  fs::copy_file(lib("good", "test_good"), mine);
  flowlab::Registry reg({dir("good"), tmp.string()}, false);
  CHECK(reg.problems().empty());
  REQUIRE(reg.notes().size() == 2);
  CHECK(reg.notes()[0] == "noise/test_const: " + mine + " shadows " + lib("good", "test_good"));
  CHECK(reg.notes()[1] == "solver/test_double: " + mine + " shadows " + lib("good", "test_good"));
  CHECK(reg.info("noise", "test_const").file == mine);  // the later one wins, and creating it is no error
  CHECK(reg.create<flowlab::Noise>("noise", "test_const") != nullptr);
  const auto plain = reg.list("noise");
  REQUIRE(plain.size() == 1);
  const auto all = reg.list("noise", true);
  REQUIRE(all.size() == 2);
  CHECK(all[0].file == mine);
  CHECK(all[0].shadowed_by.empty());
  CHECK(all[1].file == lib("good", "test_good"));
  CHECK(all[1].shadowed_by == mine);
  // Two in the same location stay a duplicate.
  fs::copy_file(lib("good", "test_good"), tmp / "libmy_good2.so");
  flowlab::Registry twice({tmp.string()}, false);
  CHECK(twice.notes().empty());
  REQUIRE(twice.problems().size() == 2);
  CHECK(twice.problems()[0] == "duplicate plugin noise/test_const: declared in " + mine + " and in " +
                                   (tmp / "libmy_good2.so").string());
  fs::remove_all(tmp);
}

TEST_CASE("missing entry point names the symbol and the file", "[registry][errors]") {
  flowlab::Registry reg({dir("missing_entry")}, false);
  REQUIRE(reg.list().size() == 1);
  CHECK(message_of<flowlab::LibraryLoadError>([&] { reg.create<flowlab::Noise>("noise", "no_entry"); }) ==
        "noise/no_entry: entry point 'flowlab_create_noise_no_entry' not found in " +
            lib("missing_entry", "test_missing_entry"));
}

TEST_CASE("a factory that throws is reported with the plugin and file", "[registry][errors]") {
  flowlab::Registry reg({dir("throwing")}, false);
  CHECK(message_of<flowlab::CreateError>([&] { reg.create<flowlab::Noise>("noise", "throws"); }) ==
        "noise/throws: construction failed (" + lib("throwing", "test_throwing") +
            "): cannot open /dev/flux-capacitor");
  flowlab::Params raw;
  raw.set("n", std::int64_t{0});
  CHECK(message_of<flowlab::ParamError>([&] { reg.create<flowlab::Noise>("noise", "range_check", raw); }) ==
        "noise/range_check: parameter 'n' must be > 0, got 0");
}

TEST_CASE("a library that fails to load is reported and the others still work", "[registry][errors]") {
  flowlab::Registry reg({dir("unresolved"), dir("good")}, false);
  CHECK_THAT(message_of<flowlab::LibraryLoadError>([&] { reg.create<flowlab::Noise>("noise", "unresolved"); }),
             ContainsSubstring(lib("unresolved", "test_unresolved") + ": cannot load library: ") &&
                 ContainsSubstring("undefined symbol: flowlab_test_symbol_nobody_defines"));
  CHECK(reg.create<flowlab::Noise>("noise", "test_const") != nullptr);
}

TEST_CASE("an unreadable file in a plugin directory is reported with its path and skipped", "[registry][errors]") {
  const fs::path tmp = fs::temp_directory_path() / "flowlab_garbage_dir";
  fs::create_directories(tmp);
  std::ofstream(tmp / "libgarbage.so") << "this is not an ELF file";
  flowlab::Registry reg({tmp.string(), dir("good")}, false);
  REQUIRE(reg.problems().size() == 1);
  CHECK_THAT(reg.problems()[0], ContainsSubstring((tmp / "libgarbage.so").string() +
                                                  ": cannot read library: not an ELF shared library"));
  CHECK(reg.list().size() == 2);
  fs::remove_all(tmp);
}

TEST_CASE("a missing plugin directory is reported, not fatal", "[registry][errors]") {
  flowlab::Registry reg({"/nonexistent/flowlab/plugins", dir("good")}, false);
  REQUIRE(reg.problems().size() == 1);
  CHECK(reg.problems()[0] == "/nonexistent/flowlab/plugins: plugin directory does not exist");
  CHECK(reg.list().size() == 2);
}

TEST_CASE("a plugin that does not implement its kind's interface is refused", "[registry][errors]") {
  flowlab::Registry reg({dir("wrong_kind")}, false);
  CHECK(message_of<flowlab::CreateError>([&] { reg.create<flowlab::Solver>("solver", "not_a_solver"); }) ==
        "solver/not_a_solver: the object does not implement the solver interface");
}

TEST_CASE("FLOWLAB_PLUGIN_PATH adds directories", "[registry]") {
  ::setenv("FLOWLAB_PLUGIN_PATH", (dir("good") + ":" + dir("marker")).c_str(), 1);
  flowlab::Registry reg({}, false);
  ::unsetenv("FLOWLAB_PLUGIN_PATH");
  CHECK(reg.directories() == std::vector<std::string>{dir("good"), dir("marker")});
  CHECK(reg.list().size() == 3);
}

TEST_CASE("the default registry finds the in-tree plugins", "[registry]") {
  flowlab::Registry reg;
  CHECK(reg.problems().empty());
  CHECK(reg.list("solver").size() >= 5);
  CHECK(reg.info("solver", "rk4").file.find("libflowlab_solvers.so") != std::string::npos);
}
