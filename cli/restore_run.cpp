// wpckpt restore's work (restore_run.hpp).
#include "cli/restore_run.hpp"

#include <fmt/core.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/criu_compat.hpp"
#include "cli/output.hpp"
#include "cli/progress.hpp"
#include "dump-format/image.hpp"
#include "lib/base/log.hpp"
#include "lib/base/unique_fd.hpp"
#include "lib/net/remote_chain.hpp"
#include "lib/restore/lazy_restore.hpp"
#include "lib/restore/restore.hpp"
#include "lib/restore/supervise.hpp"
#include "lib/state/process_state.hpp"
#include "lib/state/tree_state.hpp"

namespace wpckpt::cli {
namespace {

namespace fs = std::filesystem;

// -j/--shell-job: the process gets wpckpt's own fd 0-2 in place of the
// terminal it had there, and wpckpt's session and process group even if it
// led its own (lib/restore/session.hpp). Refused when such an fd of wpckpt is not a terminal: the
// process would silently get a pipe or a file instead.
Result<void> check_shell_job(const image::ImageChain& chain) {
  WPCKPT_TRY_ASSIGN(auto bytes, chain.read_file(state::kProcessStateFile));
  WPCKPT_TRY_ASSIGN(state::ProcessState st, state::parse(bytes));
  for (const state::FdState& f : st.fds) {
    if (f.fd > 2 || f.kind != state::FdKind::Tty || ::isatty(f.fd)) continue;
    std::string n = std::to_string(f.fd);
    return make_error(ENOTTY, "restore --shell-job",
                      "fd " + n + " of the process was a terminal" + (f.file ? " (" + f.file->path + ")" : "") +
                          ", but wpckpt's fd " + n + " is not one")
        .with_hint("run the restore in a terminal (the process then uses that terminal), or restore without -j to "
                   "give the process wpckpt's fd " + n + " as it is");
  }
  return ok();
}

// --pidfile FILE: created before the restore (never over an existing file, as
// CRIU), the pid written once the process runs, removed if the restore fails.
class PidFile {
 public:
  static Result<PidFile> create(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) {
      Error e = errno_error("create pid file", path);
      if (e.err == EEXIST) return std::move(e).with_hint("remove the old pid file first (it is never overwritten)");
      return e;
    }
    return PidFile(path, std::move(fd));
  }
  PidFile(PidFile&&) = default;
  ~PidFile() {
    if (fd_ && !written_) ::unlink(path_.c_str());
  }
  Result<void> write(pid_t pid) {
    std::string text = std::to_string(pid) + "\n";
    if (::write(fd_.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      return errno_error("write pid file", path_);
    written_ = true;
    fd_.reset();
    return ok();
  }

 private:
  PidFile(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  UniqueFd fd_;
  bool written_ = false;
};

// The chain to restore: the local one at -D, or with --page-server the one
// the server holds under -D's name.
class ChainSource {
 public:
  static Result<ChainSource> open(const RestoreOptions& opts) {
    ChainSource out;
    WPCKPT_TRY_ASSIGN(auto target, page_server_target(opts.page_server));
    if (target) {
      fs::path dir(opts.images_dir);
      std::string name = (dir.has_filename() ? dir : dir.parent_path()).filename().string();
      WPCKPT_TRY_ASSIGN(net::RemoteChain remote, net::RemoteChain::open(*target, name));
      out.remote_ = std::make_unique<net::RemoteChain>(std::move(remote));
      return out;
    }
    image::OpenOptions oo;
    oo.allow_other_owner = opts.allow_other_owner;
    WPCKPT_TRY_ASSIGN(out.local_, image::ImageChain::open(opts.images_dir, oo));
    return out;
  }
  image::ImageChain& chain() { return remote_ ? remote_->chain() : *local_; }
  // The server may stop serving this restore (in the pager, with --lazy).
  void pages_complete() const {
    if (remote_) remote_->done();
  }

 private:
  std::unique_ptr<image::ImageChain> local_;
  std::unique_ptr<net::RemoteChain> remote_;
};

// A tree's processes (the root first); one process: a list of it alone.
nlohmann::json processes_json(const restore::RestoreReport& r) {
  nlohmann::json out = nlohmann::json::array();
  if (r.processes.empty()) out.push_back({{"pid", r.pid}, {"threads", r.threads}, {"zombie", false}});
  for (const auto& p : r.processes)
    out.push_back({{"pid", p.pid}, {"ppid", p.ppid}, {"comm", p.comm}, {"threads", p.threads}, {"zombie", p.zombie}});
  return out;
}

nlohmann::json report_json(const restore::RestoreReport& r, bool detached) {
  double gbps = r.fill_seconds > 0 ? static_cast<double>(r.pages_stored * image::kPageSize) / r.fill_seconds / 1e9 : 0;
  return {{"pid", r.pid},
          {"detached", detached},
          {"threads", r.threads},
          {"images", r.images},
          {"pages_restored", r.pages_stored},
          {"pages_zero", r.pages_zero},
          {"pages_uffd_copied", r.pages_copied},
          {"pages_kept_from_file", r.pages_kept},
          {"bytes", r.pages_stored * image::kPageSize},
          {"fill_seconds", r.fill_seconds},
          {"seconds", r.seconds},
          {"gb_per_s", gbps},
          {"warnings", r.warnings},
          {"processes", processes_json(r)}};
}

// --lazy in --json: how long until the process ran and until all of its
// memory was in, and how the pager served it.
nlohmann::json lazy_json(const restore::LazyOutcome& o, double running_s, double complete_s) {
  return {{"complete", o.complete},
          {"process_ended_first", o.process_ended},
          {"seconds_to_running", running_s},
          {"seconds_to_complete", o.complete ? nlohmann::json(complete_s) : nlohmann::json(nullptr)},
          {"pages_lazy", o.pages_lazy},
          {"faults_served", o.pager.faults},
          {"pages_faulted", o.pager.pages_faulted},
          {"pages_zero_served", o.pager.pages_zero},
          {"pages_prefetched", o.pager.pages_prefetched},
          {"events", o.pager.events},
          {"forks", o.pager.forks},
          {"fault_latency_us", {{"p50", o.pager.p50_us}, {"p99", o.pager.p99_us}, {"max", o.pager.max_us}}}};
}

// The lazy phase: wait for the pager; on its failure the process was killed
// (reaped here) and restore fails with the pager's reason.
Result<restore::LazyOutcome> finish_lazy(const restore::RestoreReport& r) {
  auto outcome = r.lazy->wait(r.pid);
  if (!outcome) restore::supervise_child(r.pid);  // reap the killed process
  return outcome;
}

// A wait status already reaped (see LazyOutcome::reaped_status), told as
// supervise_child tells one.
restore::ChildExit exit_of(int status) {
  restore::ChildExit out;
  if (WIFEXITED(status)) {
    out.code = WEXITSTATUS(status);
    out.how = "exited with status " + std::to_string(out.code);
  } else {
    out.code = 128 + WTERMSIG(status);
    out.how = "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  }
  return out;
}

}  // namespace

int run_restore(const RestoreOptions& opts, const RestoreHooks& hooks) {
  auto fail = [&](const Error& e) {
    if (hooks.on_failure) hooks.on_failure(e);
    return report_error(e, opts.json);
  };
  const auto t0 = std::chrono::steady_clock::now();
  if (opts.lazy && opts.detached) {
    return fail(make_error(EINVAL, "restore --lazy", "with -d/--restore-detached")
                            .with_hint("the pager runs inside `wpckpt restore`, which stays the parent of the "
                                       "process until all memory is in; restore without -d, or without --lazy"));
  }
  // A process tree's image is restored from its directory (lib/restore/tree_restore.hpp).
  const bool tree = !opts.page_server.enabled && state::is_tree_image(opts.images_dir);
  std::optional<ChainSource> source;
  if (!tree) {
    auto opened = ChainSource::open(opts);
    if (!opened) return fail(opened.error());
    source.emplace(std::move(*opened));
    if (opts.criu.shell_job) {
      if (auto sj = check_shell_job(source->chain()); !sj) return fail(sj.error());
    }
  }
  std::optional<PidFile> pidfile;
  if (!opts.pidfile.empty()) {
    auto created = PidFile::create(opts.pidfile);
    if (!created) return fail(created.error());
    pidfile.emplace(std::move(created).value());
  }
  ProgressBar bar(!opts.json);
  restore::RestoreOptions ro;
  ro.detached = opts.detached;
  ro.allow_other_owner = opts.allow_other_owner;
  ro.shell_job = opts.criu.shell_job;
  ro.lazy = opts.lazy;
  ro.tcp = opts.tcp_established ? restore::TcpPolicy::Established
           : opts.tcp_close     ? restore::TcpPolicy::Close
                                : restore::TcpPolicy::Refuse;
  ro.network_lock = opts.criu.network_lock == "nftables";
  ro.progress = bar.callback();
  if (source) ro.pages_complete = [&source] { source->pages_complete(); };
  auto result = tree ? restore::restore_process(fs::path(opts.images_dir), ro) : restore::restore_process(source->chain(), ro);
  bar.finish();
  if (!result) return fail(result.error());
  const restore::RestoreReport& r = *result;
  if (hooks.on_running) hooks.on_running(r);
  for (const auto& w : r.warnings) log::warn("{}", w);
  if (pidfile) {
    // The process runs: a pid file we cannot write is reported, the process is not undone.
    if (auto w = pidfile->write(r.pid); !w) log::error("{} (restored pid {})", w.error().message(), r.pid);
  }
  nlohmann::json doc = report_json(r, opts.detached);
  std::optional<int> lazy_reaped;  // the process ended while the lazy restore released it
  if (r.lazy) {
    auto outcome = finish_lazy(r);
    if (!outcome) return fail(outcome.error());
    lazy_reaped = outcome->reaped_status;
    double complete_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    doc["lazy"] = lazy_json(*outcome, r.seconds, complete_s);
    if (outcome->complete)
      log::info("lazy restore of pid {}: running after {:.3f} s, all memory in after {:.3f} s ({} faults, p50 {:.0f} us, "
                "p99 {:.0f} us, {} pages prefetched)",
                r.pid, r.seconds, complete_s, outcome->pager.faults, outcome->pager.p50_us, outcome->pager.p99_us,
                outcome->pager.pages_prefetched);
  }
  if (opts.json) {
    if (opts.json_one_line) std::printf("%s\n", doc.dump().c_str());
    else print_json(doc);
    std::fflush(stdout);
  } else if (opts.detached) {
    fmt::print("{}\n", r.pid);
    std::fflush(stdout);
  }
  log::info("restored pid {} ({} threads, {} images): {} pages, {:.3f} s fill, {:.2f} GB/s, {:.3f} s total", r.pid,
            r.threads, r.images, r.pages_stored, r.fill_seconds, doc["gb_per_s"].get<double>(), r.seconds);
  if (opts.criu.display_stats)
    display_restore_stats(r.pages_stored, static_cast<uint64_t>(r.seconds * 1e6), opts.json);
  if (opts.detached) return kExitOk;
  // The restored process is our child: we end with its status, and say so
  // when it failed (else an exit status of 255 would look like ours).
  restore::ChildExit end = lazy_reaped ? exit_of(*lazy_reaped) : restore::supervise_child(r.pid);
  if (end.code != 0)
    log::warn("the restored process {} {} after {:.3f} s; wpckpt restore exits with {}", r.pid, end.how, end.seconds,
              end.code);
  return end.code;
}


}  // namespace wpckpt::cli
