#include "lib/dump/pre_copy_dump.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <system_error>

#include "lib/dump/pre_dump.hpp"
#include "lib/dump/tree_dump.hpp"

namespace wpckpt::dump {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Removes the hidden images unless kept.
struct Scratch {
  std::filesystem::path pre_copy, delta;
  bool keep_pre_copy = false, keep_delta = false;
  ~Scratch() {
    std::error_code ec;
    if (!keep_pre_copy) std::filesystem::remove_all(pre_copy, ec);
    if (!keep_delta) std::filesystem::remove_all(delta, ec);
  }
};

Result<void> check_target_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_empty(dir, ec))
    return make_error(EEXIST, "dump", dir.string() + " is not empty")
        .with_hint("give a new or empty directory with -D");
  return ok();
}

}  // namespace

bool pre_copy_by_default(const DumpRequest& request) {
  if (request.leave_running || request.snapshot || request.prev_images_dir || request.page_server) return false;
  return checkpoint::anon_memory_bytes(request.pid) >= kPreCopyFromBytes && !has_children(request.pid);
}

Result<DumpReport> dump_with_pre_copy(const DumpRequest& request, PreCopyStats& stats) {
  if (request.prev_images_dir)
    return make_error(EINVAL, "dump", "--pre-copy with --prev-images-dir")
        .with_hint("after a pre-dump the freeze is short already: drop --pre-copy");
  if (request.page_server)
    return make_error(EINVAL, "dump", "--pre-copy with --page-server")
        .with_hint("send a pre-dump with --page-server first, then the dump with --prev-images-dir: the same short freeze");
  WPCKPT_TRY(check_target_dir(request.images_dir));
  const std::filesystem::path dir = std::filesystem::absolute(request.images_dir).lexically_normal();
  const std::string hidden = fmt::format(".{}.{}.{}", dir.filename().string(), request.pid, ::getpid());
  Scratch scratch{dir.parent_path() / (hidden + ".pre-copy"), dir.parent_path() / (hidden + ".delta")};

  auto t0 = Clock::now();
  PreDumpRequest pre;
  pre.pid = request.pid;
  pre.images_dir = scratch.pre_copy;
  pre.compress_level = request.compress_level;
  pre.direct_io = request.direct_io;
  pre.file_locks = request.fds.file_locks;
  pre.ghost_limit = request.fds.ghost_limit;
  pre.progress = request.progress;
  WPCKPT_TRY_ASSIGN(PreDumpReport pre_report, pre_dump_process(pre));
  stats.pre_copy_seconds = seconds_since(t0);
  stats.pre_copy_pages = pre_report.capture.pages_written;
  if (request.cancel && request.cancel->load()) return make_error(ECANCELED, "dump", "cancelled");

  DumpRequest last = request;
  last.images_dir = scratch.delta;
  last.prev_images_dir = scratch.pre_copy;
  WPCKPT_TRY_ASSIGN(DumpReport report, dump_process(last));
  report.attach = pre_report.attach;  // how this command found the process: at its pre-copy

  auto t_merge = Clock::now();
  image::WriterOptions wopts;
  wopts.compress_level = request.compress_level;
  wopts.direct_io = request.direct_io;
  auto merged = image::merge_chain(scratch.delta, dir, wopts);
  stats.merge_seconds = seconds_since(t_merge);
  if (merged) {
    stats.merged = true;
    report.commit = *merged;
    checkpoint::fill_commit_stats(report.capture, report.commit);  // the figures of the one image at -D
    return report;
  }
  // The process may be gone already: keep what the dump wrote, as a chain.
  std::error_code ec;
  std::filesystem::rename(scratch.delta, dir, ec);
  scratch.keep_pre_copy = true;
  if (ec) {
    scratch.keep_delta = true;
    return make_error(ec.value(), "dump: merge failed (" + merged.error().message() + ") and keeping the delta at",
                            dir.string() + " failed too; the chain is in " + scratch.delta.string() + " and " +
                                scratch.pre_copy.string());
  }
  stats.kept_parent = scratch.pre_copy;
  report.warnings.push_back("merging the pre-copy into one image failed (" + merged.error().message() + "): " +
                            dir.string() + " is a chain whose parent is " + scratch.pre_copy.string() +
                            "; keep both (wpckpt merge can make one image later)");
  return report;
}

}  // namespace wpckpt::dump
