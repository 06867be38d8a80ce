// `flowlab verify RESULTS.h5`: checks an experiment file, its trial files and checkpoints (in RESULTS.trials), and
// says what is wrong where.
#include <fmt/format.h>

#include <iostream>

#include "commands.hpp"
#include "flowlab/errors.hpp"
#include "flowlab/integrity.hpp"

namespace flowlab::cli {

CLI::App* add_verify(CLI::App& app, VerifyArgs& a) {
  auto* cmd = app.add_subcommand(
      "verify", "check a results file, its trial files and checkpoints (RESULTS.trials): checksums and content");
  cmd->add_option("results", a.file, "the HDF5 results file")->required();
  return cmd;
}

int run_verify(const VerifyArgs& a) {
  size_t checked = 0;
  const auto problems = verify_results(a.file, &checked);
  for (const auto& p : problems)
    std::cout << fmt::format("{}{} {}\n", p.file, p.trial.empty() ? "" : fmt::format(" (trial {})", p.trial), p.what);
  const std::string files = fmt::format("{} file{}", checked, checked == 1 ? "" : "s");
  if (problems.empty()) std::cout << fmt::format("{}: OK ({} checked)\n", a.file, files);
  else
    std::cout << fmt::format("{}: {} problem{} in {} checked\n", a.file, problems.size(),
                             problems.size() == 1 ? "" : "s", files);
  std::cout.flush();
  return problems.empty() ? 0 : 1;
}

/// Runs a command that reads `file`; an error it throws is made to name the file and say what it looks like.
int naming_file(const std::string& file, const std::function<int()>& command) {
  // A file whose content no longer matches its checksum is still read (what is left may be what the user needs),
  // but never silently: its numbers may be wrong.
  try {
    if (const std::string p = checksum_problem(file); !p.empty())
      std::cerr << fmt::format("flowlab: warning: {} {}; check it with: flowlab verify {}\n", file, p, file);
  } catch (const Error&) {
  }
  try {
    return command();
  } catch (const Error& e) {
    throw Error(explain_file_error(file, e.what()));
  }
}

}  // namespace flowlab::cli
