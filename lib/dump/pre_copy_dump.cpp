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

// Removes the hidden images unless kept: the pre-copy's rounds, oldest
// first, and the frozen delta.
struct Scratch {
  std::vector<std::filesystem::path> rounds;
  std::filesystem::path delta;
  bool keep_rounds = false, keep_delta = false;
  ~Scratch() {
    std::error_code ec;
    if (!keep_rounds)
      for (const auto& r : rounds) std::filesystem::remove_all(r, ec);
    if (!keep_delta) std::filesystem::remove_all(delta, ec);
  }
};

// Whether the pre-copy runs another round: what a round wrote is what the
// freeze would have to write after it. Another round when that is above
// kSettledPages (a freeze of ~10 ms here) and still shrinking by half (a
// process that writes faster than wpckpt copies would never settle), up to
// kMaxRounds: at 4 GiB writing 0.5 % of its pages a second, one round
// left 37,000 pages to the freeze (236 ms stopped).
constexpr uint64_t kSettledPages = 2048;
constexpr size_t kMaxRounds = 4;
bool another_round(const std::vector<uint64_t>& written) {
  const size_t n = written.size();
  if (n >= kMaxRounds || written.back() <= kSettledPages) return false;
  return n == 1 || written.back() * 2 <= written[n - 2];
}

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
  Scratch scratch;
  scratch.delta = dir.parent_path() / (hidden + ".delta");

  // Rounds of pre-dumps while the process runs: the whole memory, then what
  // it wrote during the round before, while that is worth another round.
  auto t0 = Clock::now();
  PreDumpRequest pre;
  pre.pid = request.pid;
  pre.compress_level = request.compress_level;
  pre.direct_io = request.direct_io;
  pre.file_locks = request.fds.file_locks;
  pre.ghost_limit = request.fds.ghost_limit;
  pre.progress = request.progress;
  std::vector<uint64_t> written;
  attach::AttachReport first_attach;
  do {
    const size_t round = scratch.rounds.size();
    scratch.rounds.push_back(dir.parent_path() /
                             (hidden + (round == 0 ? ".pre-copy" : ".pre-copy-" + std::to_string(round + 1))));
    pre.images_dir = scratch.rounds.back();
    if (round > 0) pre.prev_images_dir = scratch.rounds[round - 1];
    WPCKPT_TRY_ASSIGN(PreDumpReport pre_report, pre_dump_process(pre));
    if (round == 0) first_attach = pre_report.attach;
    written.push_back(pre_report.capture.pages_written);
    stats.pre_copy_pages += pre_report.capture.pages_written;
    if (request.cancel && request.cancel->load()) return make_error(ECANCELED, "dump", "cancelled");
  } while (another_round(written));
  stats.pre_copy_seconds = seconds_since(t0);
  stats.pre_copy_rounds = written.size();

  DumpRequest last = request;
  last.images_dir = scratch.delta;
  last.prev_images_dir = scratch.rounds.back();
  WPCKPT_TRY_ASSIGN(DumpReport report, dump_process(last));
  report.attach = first_attach;  // how this command found the process: at its pre-copy

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
  scratch.keep_rounds = true;
  if (ec) {
    scratch.keep_delta = true;
    return make_error(ec.value(), "dump: merge failed (" + merged.error().message() + ") and keeping the delta at",
                            dir.string() + " failed too; the chain ends in " + scratch.delta.string() +
                                " (its parents: " + scratch.rounds.back().string() + " and before)");
  }
  stats.kept_parent = scratch.rounds.back();
  report.warnings.push_back("merging the pre-copy into one image failed (" + merged.error().message() + "): " +
                            dir.string() + " is a chain whose parent is " + scratch.rounds.back().string() +
                            "; keep the chain (wpckpt merge can make one image later)");
  return report;
}

}  // namespace wpckpt::dump
