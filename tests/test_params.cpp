// Parameter maps: type tokens, parsing of text values, list syntax and typed getters.
#include <catch2/catch_test_macros.hpp>

#include "flowlab/errors.hpp"
#include "flowlab/params.hpp"

TEST_CASE("type tokens parse, unknown ones are refused with the valid list", "[params]") {
  flowlab::ParamSpec s;
  s.name = "act";
  CHECK(flowlab::parse_param_type("enum(silu|relu)", s).choices == std::vector<std::string>{"silu", "relu"});
  CHECK(flowlab::parse_param_type("float_list", s).type_name() == "float_list");
  try {
    flowlab::parse_param_type("double", s);
    FAIL("no throw");
  } catch (const flowlab::Error& e) {
    CHECK(std::string(e.what()) ==
          "parameter 'act': unknown type 'double' (valid: bool, int, float, string, int_list, float_list, enum(a|b|...))");
  }
}

TEST_CASE("text values are parsed against the schema, ints promote to float", "[params]") {
  std::vector<flowlab::ParamSpec> schema(3);
  schema[0].name = "rtol", schema[0].type = flowlab::ParamType::Float, schema[0].default_text = "1e-5";
  schema[1].name = "steps", schema[1].type = flowlab::ParamType::Int, schema[1].default_text = "10";
  schema[2].name = "mult", schema[2].type = flowlab::ParamType::IntList, schema[2].default_text = "[1, 2]";
  flowlab::Params raw;
  raw.set("rtol", std::int64_t{1});
  const auto p = flowlab::resolve_params("solver/x", schema, raw);
  CHECK(p.real("rtol") == 1.0);
  CHECK(p.integer("steps") == 10);
  CHECK(p.int_list("mult") == std::vector<std::int64_t>{1, 2});
  CHECK(flowlab::to_string(p.at("mult")) == "[1, 2]");
  try {
    p.integer("rtol");
    FAIL("no throw");
  } catch (const flowlab::ParamError& e) {
    CHECK(std::string(e.what()) == "solver/x: parameter 'rtol' is not a int (got float 1)");
  }
  flowlab::Params bad;
  bad.set("steps", std::string("10.5"));
  try {
    flowlab::resolve_params("solver/x", schema, bad);
    FAIL("no throw");
  } catch (const flowlab::ParamError& e) {
    CHECK(std::string(e.what()) ==
          "solver/x: parameter 'steps' expects int, got string 10.5 (known: rtol float, steps int, mult int_list)");
  }
}
