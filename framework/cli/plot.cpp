// `flowlab plot`: PNGs drawn by gnuplot (pngcairo), run as a child process on a script written beside each PNG
// (NAME.gp and its data NAME.dat), so the user can edit the script and redraw with `gnuplot NAME.gp` in DIR.
// Image samples are written as grids with stb_image_write.
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "stored_model.hpp"
#include "flowlab/files.hpp"
#include "flowlab/images.hpp"
#include "flowlab/report.hpp"

namespace fs = std::filesystem;

namespace flowlab::cli {
namespace {

/// The gnuplot executable on PATH, or "" when there is none.
std::string find_gnuplot() {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    const fs::path p = fs::path(dir) / "gnuplot";
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

/// A file-name-safe form of a label or key.
std::string safe(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '=' ? c : '_';
  return out;
}

/// gnuplot single-quoted string (a quote is doubled).
std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

class Plotter {
 public:
  Plotter(std::string gnuplot, fs::path dir, int w, int h)
      : gnuplot_(std::move(gnuplot)), dir_(std::move(dir)), w_(w), h_(h) {}

  /// Writes NAME.gp (terminal and output set, then `body`) and runs gnuplot on it in DIR.
  void draw(const std::string& name, const std::string& body) {
    if (!data_error_.empty()) throw Error(data_error_);  // a data file this plot reads could not be written
    const std::string script = name + ".gp";
    // Written through write_file (checked writes, fsync, rename): a full disk is an error naming the file.
    write_file((dir_ / script).string(),
               fmt::format("# Redraw with: gnuplot {}  (in this directory)\n", script) + "set encoding utf8\n" +
                   fmt::format("set terminal pngcairo size {},{} noenhanced font 'Sans,10'\n", w_, h_) +
                   fmt::format("set output {}\n", gp_quote(name + ".png")) + body);
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(fmt::format("plot: fork failed: {}", std::strerror(errno)));
    if (pid == 0) {
      if (::chdir(dir_.c_str()) != 0) ::_exit(126);
      ::execl(gnuplot_.c_str(), "gnuplot", script.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
      throw Error(fmt::format("plot: gnuplot failed on {} (exit status {})", (dir_ / script).string(),
                              WIFEXITED(st) ? WEXITSTATUS(st) : -1));
    written.push_back((dir_ / (name + ".png")).string());
  }
  /// NAME.dat, written (checked, through write_file) when the returned stream goes out of scope, before draw().
  class DataFile {
   public:
    DataFile(Plotter& p, std::string path) : p_(p), path_(std::move(path)) {}
    DataFile(const DataFile&) = delete;
    ~DataFile() {
      try {
        write_file(path_, text_.str());
      } catch (const std::exception& e) {
        if (p_.data_error_.empty()) p_.data_error_ = e.what();  // reported by the next draw()
      }
    }
    template <class T>
    DataFile& operator<<(const T& v) {
      text_ << v;
      return *this;
    }

   private:
    Plotter& p_;
    std::string path_;
    std::ostringstream text_;
  };
  DataFile data(const std::string& name) { return DataFile(*this, (dir_ / (name + ".dat")).string()); }
  const fs::path& dir() const { return dir_; }
  std::vector<std::string> written;

 private:
  std::string gnuplot_;
  fs::path dir_;
  int w_, h_;
  std::string data_error_;  ///< the first data file that could not be written
};

void plot_quality(Plotter& p, const Report& rep, const std::string& metric_name, size_t mi) {
  for (size_t gi = 0; gi < rep.groups.size(); ++gi) {
    const auto& g = rep.groups[gi];
    std::vector<std::string> key;
    for (const auto& [k, v] : g.key) key.push_back(k + "=" + v);
    const std::string title = key.empty() ? "all trials" : fmt::format("{}", fmt::join(key, ", "));
    const std::string name =
        safe(fmt::format("quality_{}{}{}", metric_name, key.empty() ? "" : "_", fmt::join(key, "_")));
    std::vector<std::string> solvers;  // one curve per run family: "euler", "euler grid=edm", ...
    for (const auto& r : g.rows)
      if (std::find(solvers.begin(), solvers.end(), run_family(r)) == solvers.end()) solvers.push_back(run_family(r));
    {
      auto out = p.data(name);
      out << "# nfe mean std label (one block per run family: the solver and its parameters but steps and tolerances)\n";
      for (const auto& s : solvers) {
        out << "# " << s << "\n";
        std::vector<const ReportRow*> rows;
        for (const auto& r : g.rows)
          if (run_family(r) == s && std::isfinite(r.mean[mi])) rows.push_back(&r);
        std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->nfe < b->nfe; });
        for (const auto* r : rows)
          out << fmt::format("{} {} {} \"{}\"\n", r->nfe, r->mean[mi], std::isnan(r->std[mi]) ? 0.0 : r->std[mi],
                             r->label);
        out << "\n\n";
      }
    }
    std::string body = fmt::format(
        "set title {}\nset logscale x\nset xlabel 'NFE (function evaluations)'\nset ylabel {}\nset key top right\n"
        "set grid\nplot ",
        gp_quote(fmt::format("{} vs NFE, {} (mean ± std over seeds)", metric_name, title)),
        gp_quote(metric_name + " (lower is better)"));
    for (size_t i = 0; i < solvers.size(); ++i)
      body += fmt::format("{}{} index {} using 1:2:3 with yerrorlines lw 2 pt 7 title {}", i ? ", \\\n     " : "",
                          gp_quote(name + ".dat"), i, gp_quote(solvers[i]));
    body += "\n";
    p.draw(name, body);
  }
}

// Quality during training (eval.every): per group (with reflow rounds, per round), the metric against the training
// step, one line per eval run evaluated during training; the last point of each is its final evaluation.
void plot_during(Plotter& p, const Report& rep, const std::string& metric_name, size_t mi) {
  for (const auto& g : rep.groups) {
    if (g.curves.empty()) continue;
    std::vector<std::string> key;
    for (const auto& [k, v] : g.key) key.push_back(k + "=" + v);
    const std::string title = key.empty() ? "all trials" : fmt::format("{}", fmt::join(key, ", "));
    const std::string name =
        safe(fmt::format("during_{}{}{}", metric_name, key.empty() ? "" : "_", fmt::join(key, "_")));
    {
      auto out = p.data(name);
      out << "# train_step mean std n (one block per eval run; the last step is the final evaluation)\n";
      for (const auto& c : g.curves) {
        out << "# " << c.label << "\n";
        for (size_t k = 0; k < c.steps.size(); ++k)
          if (std::isfinite(c.mean[mi][k]))
            out << fmt::format("{} {} {} {}\n", c.steps[k], c.mean[mi][k],
                               std::isnan(c.std[mi][k]) ? 0.0 : c.std[mi][k], c.n[k]);
        out << "\n\n";
      }
    }
    std::string body =
        fmt::format("set title {}\nset xlabel 'training step'\nset ylabel {}\nset key top right\nset grid\n"
                    "set offsets graph 0.03, graph 0.03, graph 0.05, graph 0.05\nplot ",
                    gp_quote(fmt::format("{} during training, {} (mean ± std over seeds; last step: final evaluation)",
                                         metric_name, title)),
                    gp_quote(metric_name + " (lower is better)"));
    for (size_t i = 0; i < g.curves.size(); ++i)
      body += fmt::format("{}{} index {} using 1:2:3 with yerrorlines lw 2 pt 7 title {}", i ? ", \\\n     " : "",
                          gp_quote(name + ".dat"), i, gp_quote(g.curves[i].label));
    body += "\n";
    p.draw(name, body);
  }
}

void plot_training(Plotter& p, const StoredResults& res) {
  std::vector<const StoredTrial*> trials;
  for (const auto& t : res.trials)
    if (!t.train.step.empty()) trials.push_back(&t);
  if (trials.empty()) return;
  {
    auto out = p.data("training");
    out << "# step loss grad_norm lr (one block per trial; with reflow rounds, steps counted across the rounds)\n";
    for (const auto* t : trials) {
      out << "# " << t->id << "\n";
      int64_t offset = 0, last = -1;  // a round's steps restart at 0: continue from the previous round's last
      for (size_t i = 0; i < t->train.step.size(); ++i) {
        if (t->train.step[i] <= last && i < t->train.round.size() && i > 0 &&
            t->train.round[i] != t->train.round[i - 1])
          offset += last + 1;
        last = t->train.step[i];
        out << fmt::format("{} {} {} {}\n", offset + t->train.step[i], t->train.loss[i],
                           i < t->train.grad_norm.size() ? t->train.grad_norm[i] : 0.0,
                           i < t->train.lr.size() ? t->train.lr[i] : 0.0);
      }
      out << "\n\n";
    }
  }
  std::string curves_loss, curves_grad;
  for (size_t i = 0; i < trials.size(); ++i) {
    const std::string sep = i ? ", \\\n     " : "";
    curves_loss +=
        fmt::format("{}'training.dat' index {} using 1:2 with lines title {}", sep, i, gp_quote(trials[i]->id));
    curves_grad +=
        fmt::format("{}'training.dat' index {} using 1:3 with lines title {}", sep, i, gp_quote(trials[i]->id));
  }
  p.draw("training", fmt::format("set multiplot layout 2,1\nset grid\nset key outside right font ',8'\n"
                                 "set logscale y\nset title 'training loss'\nset xlabel 'step'\nplot {}\n"
                                 "set title 'gradient norm'\nplot {}\nunset multiplot\n",
                                 curves_loss, curves_grad));
}

/// The samples of one eval row beside the reference (2-D data), and its trajectories when stored.
void plot_samples_2d(Plotter& p, const std::string& file, const StoredTrial& t, size_t row) {
  const std::string base = fmt::format("trials/{}", t.id);
  const std::string rowp = fmt::format("{}/rows/{:03d}", base, row);
  if (!has_object(file, rowp + "/samples") || !has_object(file, base + "/samples/reference")) return;
  const Array gen = read_array(file, rowp + "/samples");
  const Array ref = read_array(file, base + "/samples/reference");
  const std::string name = safe(fmt::format("samples_{}_{}", t.id, t.eval[row].label));
  {
    auto out = p.data(name);
    out << "# x y (block 0: reference, block 1: generated)\n";
    for (const Array* a : {&ref, &gen}) {
      for (size_t i = 0; i + 1 < a->values.size(); i += 2) out << a->values[i] << " " << a->values[i + 1] << "\n";
      out << "\n\n";
    }
  }
  p.draw(
      name,
      fmt::format("set multiplot layout 1,2 title {}\nset size ratio -1\nunset key\n"
                  "set title 'reference'\nplot {} index 0 using 1:2 with points pt 7 ps 0.3 lc rgb '#1f77b4'\n"
                  "set title {}\nplot {} index 1 using 1:2 with points pt 7 ps 0.3 lc rgb '#d62728'\nunset multiplot\n",
                  gp_quote(t.id), gp_quote(name + ".dat"), gp_quote("generated: " + t.eval[row].label),
                  gp_quote(name + ".dat")));
  if (!has_object(file, rowp + "/trajectory")) return;
  const Array tr = read_array(file, rowp + "/trajectory");  // [K, T+1, 2]
  if (tr.shape.size() != 3 || tr.shape[2] != 2) return;
  const std::string tname = safe(fmt::format("trajectories_{}_{}", t.id, t.eval[row].label));
  {
    auto out = p.data(tname);
    out << "# x y (one block per trajectory, noise to sample)\n";
    for (int64_t k = 0; k < tr.shape[0]; ++k) {
      for (int64_t s = 0; s < tr.shape[1]; ++s) {
        const size_t o = static_cast<size_t>((k * tr.shape[1] + s) * 2);
        out << tr.values[o] << " " << tr.values[o + 1] << "\n";
      }
      out << "\n\n";
    }
  }
  p.draw(tname, fmt::format("set title {}\nset size ratio -1\nunset key\n"
                            "plot {} using 1:2 with points pt 7 ps 0.2 lc rgb '#bbbbbb', \\\n"
                            "     {} using 1:2 with linespoints pt 7 ps 0.4 lw 1.5\n",
                            gp_quote(fmt::format("trajectories: {}, {}", t.id, t.eval[row].label)),
                            gp_quote(name + ".dat"), gp_quote(tname + ".dat")));
}

/// The velocity field of a trial's stored model (2-D data) as arrows on a 21 x 21 grid over the reference samples'
/// range, at t = 0, 0.5 and 1 (unconditioned: the null condition for conditioned models).
void plot_velocity(Plotter& p, const Registry& registry, const std::string& file, const StoredTrial& t) {
  const std::string refp = fmt::format("trials/{}/samples/reference", t.id);
  if (!has_object(file, fmt::format("trials/{}/weights", t.id)) || !has_object(file, refp)) return;
  const StoredModel stored = read_model(file, t.id);
  if (stored.event_shape != std::vector<int64_t>{2}) return;
  const Array ref = read_array(file, refp);
  float lo[2] = {1e30f, 1e30f}, hi[2] = {-1e30f, -1e30f};
  for (size_t i = 0; i + 1 < ref.values.size(); i += 2)
    for (int d = 0; d < 2; ++d) lo[d] = std::min(lo[d], ref.values[i + d]), hi[d] = std::max(hi[d], ref.values[i + d]);
  for (int d = 0; d < 2; ++d) {
    const float m = 0.1f * (hi[d] - lo[d]);
    lo[d] -= m, hi[d] += m;
  }
  torch::NoGradGuard no_grad;
  ArchitectureSpec spec;
  const auto model = rebuild_model(registry, stored, spec);
  constexpr int64_t kGrid = 21;
  const at::Tensor gx = at::linspace(lo[0], hi[0], kGrid), gy = at::linspace(lo[1], hi[1], kGrid);
  const auto mesh = at::meshgrid({gx, gy}, "ij");
  const at::Tensor x = at::stack({mesh[0].flatten(), mesh[1].flatten()}, 1);
  const double cell = std::min(hi[0] - lo[0], hi[1] - lo[1]) / double(kGrid - 1);
  const std::string name = safe(fmt::format("velocity_{}", t.id));
  const std::vector<double> times = {0.0, 0.5, 1.0};
  {
    auto out = p.data(name);
    out << "# x y dx dy |v| (one block per t = 0, 0.5, 1; arrows scaled to the longest, 0.9 cell)\n";
    for (double tv : times) {
      const at::Tensor v = model->forward(x, at::full({x.size(0)}, tv, at::kFloat)).to(at::kDouble);
      const at::Tensor speed = v.norm(2, 1);
      const double scale = 0.9 * cell / std::max(1e-12, speed.max().item<double>());
      const auto xa = x.accessor<float, 2>();
      const auto va = v.accessor<double, 2>();
      const auto sa = speed.accessor<double, 1>();
      out << "# t = " << tv << "\n";
      for (int64_t i = 0; i < x.size(0); ++i)
        out << fmt::format("{} {} {} {} {}\n", xa[i][0], xa[i][1], va[i][0] * scale, va[i][1] * scale, sa[i]);
      out << "\n\n";
    }
  }
  std::string body = fmt::format("set multiplot layout 1,3 title {}\nset size ratio -1\nunset key\nset xrange [{}:{}]\n"
                                 "set yrange [{}:{}]\nset cblabel '|v|'\n",
                                 gp_quote("velocity field v(x, t): " + t.id), lo[0], hi[0], lo[1], hi[1]);
  for (size_t i = 0; i < times.size(); ++i)
    body += fmt::format(
        "set title 't = {}'\nplot {} index {} using 1:2:3:4:5 with vectors head size 0.08,20 filled lc palette\n",
        times[i], gp_quote(name + ".dat"), i);
  body += "unset multiplot\n";
  p.draw(name, body);
}

}  // namespace

CLI::App* add_plot(CLI::App& app, PlotArgs& a) {
  auto* cmd =
      app.add_subcommand("plot", "draw PNGs (gnuplot) of a results file: quality vs NFE, quality during training "
                                 "(eval.every), training, samples");
  cmd->add_option("results", a.file, "the HDF5 results file")->required();
  cmd->add_option("--out", a.out, "directory for the PNGs and their gnuplot scripts")->required()->type_name("DIR");
  cmd->add_option("--by", a.by, "group by these swept keys, or seed (repeatable; default: every swept key)")
      ->type_name("KEY");
  cmd->add_option("--metric", a.metric, "the metric against NFE (default: the first)")->type_name("NAME");
  cmd->add_option("--trial", a.trial, "the trial whose samples are drawn (default: the first completed)")
      ->type_name("ID");
  cmd->add_option("--run", a.run, "the eval run whose samples are drawn (default: the last)")->type_name("LABEL");
  cmd->add_option("--width", a.width, "PNG width in pixels (default 800)")->check(CLI::Range(16, 20000));
  cmd->add_option("--height", a.height, "PNG height in pixels (default 600)")->check(CLI::Range(16, 20000));
  return cmd;
}

int run_plot(const Registry& registry, const PlotArgs& a) {
  const StoredResults res = read_results(a.file, &registry);
  ReportOptions opt;
  opt.by = a.by;
  if (!a.metric.empty()) opt.metrics = {a.metric};
  const Report rep = build_report(res, opt);
  // The trial and row whose samples are drawn.
  const StoredTrial* trial = nullptr;
  if (!a.trial.empty()) {
    trial = &res.trial(a.trial);
  } else {
    for (const auto& t : res.trials)
      if (t.status == "completed" && !t.eval.empty()) {
        trial = &t;
        break;
      }
  }
  size_t row = 0;
  if (trial && !trial->eval.empty()) {
    row = trial->eval.size() - 1;
    if (!a.run.empty()) {
      std::vector<std::string> labels;
      bool found = false;
      for (size_t i = 0; i < trial->eval.size(); ++i) {
        labels.push_back(trial->eval[i].label);
        if (trial->eval[i].label == a.run) row = i, found = true;
      }
      if (!found)
        throw Error(
            fmt::format("--run: '{}' is not an eval run of {} (valid: {})", a.run, trial->id, fmt::join(labels, ", ")));
    }
  }
  const std::string gnuplot = find_gnuplot();
  if (gnuplot.empty())
    throw Error("plot: gnuplot is not on PATH: install the Debian package gnuplot-nox (apt-get install gnuplot-nox)");
  fs::create_directories(a.out);
  Plotter p(gnuplot, fs::path(a.out), a.width, a.height);
  if (!rep.metrics.empty()) plot_quality(p, rep, rep.metrics[0], 0);
  if (!rep.metrics.empty()) plot_during(p, rep, rep.metrics[0], 0);
  plot_training(p, res);
  if (trial && !trial->eval.empty()) {
    const std::string rowp = fmt::format("trials/{}/rows/{:03d}/samples", trial->id, row);
    if (has_object(a.file, rowp)) {
      const Array gen = read_array(a.file, rowp);
      if (gen.shape.size() == 2 && gen.shape[1] == 2) {
        plot_samples_2d(p, a.file, *trial, row);
        plot_velocity(p, registry, a.file, *trial);
      } else if (gen.shape.size() == 4) {
        auto first = [](const Array& x, int64_t k) {
          Array out = x;
          const int64_t per = x.shape[0] ? static_cast<int64_t>(x.values.size()) / x.shape[0] : 0;
          out.shape[0] = std::min(k, x.shape[0]);
          out.values.resize(static_cast<size_t>(out.shape[0] * per));
          return out;
        };
        const std::string name = safe(fmt::format("samples_{}_{}", trial->id, trial->eval[row].label));
        if (write_image_grid(first(gen, 64), (p.dir() / (name + ".png")).string(), 8))
          p.written.push_back((p.dir() / (name + ".png")).string());
        const std::string refp = fmt::format("trials/{}/samples/reference", trial->id);
        if (has_object(a.file, refp)) {
          const std::string rname = safe(fmt::format("reference_{}", trial->id));
          if (write_image_grid(first(read_array(a.file, refp), 64), (p.dir() / (rname + ".png")).string(), 8))
            p.written.push_back((p.dir() / (rname + ".png")).string());
        }
      }
    }
  }
  for (const auto& f : p.written) std::cout << f << "\n";
  return 0;
}

}  // namespace flowlab::cli
