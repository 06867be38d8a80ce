// FLOWLAB_API_VERSION guards the plugin ABI: a plugin built against other interface headers is refused at load.
// This test keeps the version honest: it hashes the declarations of every installed SDK header (comments and
// whitespace dropped, so documentation edits do not count) and compares the hash with the one recorded for the
// current version in framework/sdk/api_versions.txt. An interface change without a version bump fails here.
#include <catch2/catch_test_macros.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "flowlab/plugin.hpp"

namespace fs = std::filesystem;

namespace {

// C++ text without comments and with only the whitespace that separates two words (identifiers, keywords, numbers):
// "int f ( int x ) ;" and "int f(int x);" are the same declaration, and a formatter that moves spaces, line breaks or
// a macro's line splices (backslash-newline, which the preprocessor removes) changes nothing. String and character
// literals are kept whole.
std::string declarations(const std::string& text) {
  const auto word = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
  std::string out;
  bool space = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '/' && i + 1 < text.size() && text[i + 1] == '/') {
      i = text.find('\n', i);
      if (i == std::string::npos) break;
      space = true;
      continue;
    }
    if (c == '/' && i + 1 < text.size() && text[i + 1] == '*') {
      i = text.find("*/", i + 2);
      if (i == std::string::npos) break;
      ++i;
      space = true;
      continue;
    }
    if (c == '"' || c == '\'') {
      const size_t start = i;
      for (++i; i < text.size() && text[i] != c; ++i)
        if (text[i] == '\\') ++i;
      space = false;
      out += text.substr(start, i - start + 1);
      continue;
    }
    // A backslash-newline (a macro's line splice, which the preprocessor removes) is whitespace too, so that
    // reformatting a macro's lines does not count.
    const bool splice = c == '\\' && i + 1 < text.size() && (text[i + 1] == '\n' || text[i + 1] == '\r');
    if (splice || std::isspace(static_cast<unsigned char>(c))) {
      space = true;
      continue;
    }
    if (space && !out.empty() && word(out.back()) && word(c)) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// The hash of the installed headers: each file's name and declarations, in name order.
std::string interface_hash() {
  std::vector<fs::path> headers;
  for (const auto& e : fs::directory_iterator(FLOWLAB_SDK_HEADERS))
    if (e.path().extension() == ".hpp") headers.push_back(e.path());
  std::sort(headers.begin(), headers.end());
  uint64_t h = 1469598103934665603ULL;
  for (const auto& p : headers) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    h = fnv1a(p.filename().string() + "\n" + declarations(ss.str()) + "\n", h);
  }
  return fmt::format("{:016x}", h);
}

}  // namespace

TEST_CASE("declarations: comments, whitespace and line splices do not count, code and literals do", "[api]") {
  CHECK(declarations("int  f(int x); // the f\n/* block\n comment */ virtual void g() = 0;") ==
        "int f(int x);virtual void g()=0;");
  CHECK(declarations("const char* s = \"a  // not a comment\";") == "const char*s=\"a  // not a comment\";");
  CHECK(declarations("a\n\n\tb") == "a b");
  CHECK(declarations("#define M(a) \\\n    f(a);    \\\n  g(a)") == "#define M(a)f(a);g(a)");
  CHECK(fnv1a(declarations("virtual int f();")) != fnv1a(declarations("virtual long f();")));
}

TEST_CASE("an interface header change comes with a FLOWLAB_API_VERSION bump", "[api]") {
  std::ifstream in(FLOWLAB_API_VERSIONS);
  REQUIRE(in);
  std::string line, version, hash;
  while (std::getline(in, line))  // "VERSION HASH" lines, oldest first; '#' starts a comment
    if (!line.empty() && line[0] != '#') {
      std::istringstream fields(line);
      fields >> version >> hash;
    }
  const std::string current = interface_hash();
  INFO(fmt::format("the SDK headers' declarations hash to {}; framework/sdk/api_versions.txt records {} for API "
                   "version {}. If an interface changed, bump FLOWLAB_API_VERSION in plugin.hpp and add the line "
                   "'{} {}' to api_versions.txt",
                   current, hash, version, FLOWLAB_API_VERSION + (version == std::to_string(FLOWLAB_API_VERSION)), current));
  CHECK(version == std::to_string(FLOWLAB_API_VERSION));
  CHECK(hash == current);
}
