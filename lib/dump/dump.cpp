#include "lib/dump/dump.hpp"

#include <fmt/core.h>
#include <signal.h>

#include <chrono>

#include "lib/base/log.hpp"
#include "lib/checkpoint/memory_capture.hpp"
#include "lib/checkpoint/page_prefetch.hpp"
#include "lib/dump/attach_json.hpp"
#include "lib/dump/fault_point.hpp"
#include "lib/dump/fd_capture.hpp"
#include "lib/dump/image_target.hpp"
#include "lib/dump/mapping_capture.hpp"
#include "lib/dump/snapshot_copy.hpp"
#include "lib/dump/state_capture.hpp"
#include "lib/dump/tree_dump.hpp"
#include "lib/dump/tree_image.hpp"
#include "lib/dump/process_capture.hpp"
#include "lib/dump/thread_capture.hpp"
#include "lib/dump/unsupported_state.hpp"
#include "lib/probe/features.hpp"
#include "lib/ptrace/freezer.hpp"
#include "lib/ptrace/may_trace.hpp"
#include "lib/state/process_state.hpp"
#include "tracker/agent_link.hpp"
#include "tracker/proc_maps.hpp"

namespace wpckpt::dump {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t micros(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}
uint64_t micros(double seconds) { return static_cast<uint64_t>(seconds * 1e6); }

Result<void> check_cancel(const DumpRequest& r) {
  if (r.cancel && r.cancel->load()) return interrupted_error(r.pid);
  return ok();
}

}  // namespace

nlohmann::json report_json(const DumpReport& d) {
  return {{"freezing_time", d.freezing_time},
          {"frozen_time", d.frozen_time},
          {"memdump_time", d.memdump_time},
          {"memwrite_time", d.memwrite_time},
          {"commit_time", d.commit_time},
          {"stopped_time", d.stopped_time},
          {"time_unit", "us"},
          {"pages_scanned", d.pages_scanned},
          {"pages_skipped_parent", d.pages_skipped_parent},
          {"pages_written", d.pages_written},
          {"pages_prefetched", d.pages_prefetched},
          {"prefetch_time", d.prefetch_time},
          {"threads", d.threads},
          {"mappings", d.mappings},
          {"fds", d.fds},
          {"left_running", d.left_running}};
}

namespace {

// The buffer made before the freeze for a snapshot's pages read while
// frozen, one huge page; it grows only for a larger delta.
constexpr size_t kFrozenReadBufferBeforeFreeze = 2u << 20;

// The dump of a process without children.
Result<DumpReport> dump_one(const DumpRequest& r) {
  DumpReport rep;
  WPCKPT_TRY(refuse_unsupported_state(r.pid, "dump", r.fds.ghost_limit, r.fds.file_locks));
  // The image's place first (a page server that refuses, a -D that exists):
  // a failure there leaves the process untouched.
  image::WriterOptions wopts;
  wopts.compress_level = r.compress_level;
  wopts.direct_io = r.direct_io;
  wopts.progress = r.progress;
  // A parent written as a tree (the process had children then): its image there.
  const auto parent = r.page_server ? r.prev_images_dir : member_parent(r.prev_images_dir, r.pid, r.pid);
  WPCKPT_TRY_ASSIGN(ImageTarget target, open_image_target(r.images_dir, parent, r.page_server, image::ImageKind::Dump, wopts));
  image::ImageWriter* writer = target.writer.get();
  // Its threads and buffers, before the freeze rather than in it: as many as
  // the parent's delta filled, this one being taken at about the same pace
  // (more below if the prefetch finds more).
  writer->warm_up(target.parent_pages_written());
  // A process without tracking is attached (a brief freeze of its own).
  WPCKPT_TRY_ASSIGN(rep.attach, attach::ensure_tracked(r.pid));
  WPCKPT_TRY(check_cancel(r));

  // The area flags need smaps, which walks every page table: read it while
  // the process runs; frozen, only areas that changed since are read again.
  auto smaps = tracker::read_smaps(r.pid);
  probe_mapping_features();
  checkpoint::probe_capture_features();
  PageBuffer frozen_read_buffer;
  if (r.snapshot) frozen_read_buffer.reserve(kFrozenReadBufferBeforeFreeze);
  WPCKPT_TRY_ASSIGN(tracker::AgentLink link, tracker::AgentLink::attach(r.pid));
  // The pages the freeze will read, read once before it (page_prefetch.hpp);
  // a snapshot reads them in the freeze too when they are few (read-frozen).
  if (target.parent()) {
    const checkpoint::PrefetchStats warmed = checkpoint::prefetch_before_freeze(
        r.pid, link.uffd(), smaps ? &*smaps : nullptr, checkpoint::kPrefetchMaxPages);
    rep.pages_prefetched = warmed.pages_read;
    rep.prefetch_time = micros(warmed.seconds);
  }
  writer->warm_up(checkpoint::expected_delta_pages(target.parent_pages_written(), rep.pages_prefetched));
  auto t_freeze = Clock::now();
  rep.freeze_began = t_freeze;
  WPCKPT_TRY_ASSIGN(ptrace::Freezer frozen, ptrace::Freezer::freeze(r.pid));
  auto t_frozen = Clock::now();
  rep.freezing_time = micros(t_frozen - t_freeze);
  // Again, now that it is stopped: the pid may have been reused since.
  WPCKPT_TRY(ptrace::check_may_trace(r.pid));
  // Its areas, read once in this freeze before any injection: for the
  // refusals, the state and the scan (maps takes ~0.6 us per area to read).
  WPCKPT_TRY_ASSIGN(const std::vector<tracker::Vma> frozen_areas, read_frozen_areas(r.pid, smaps ? &*smaps : nullptr));
  // And again frozen: a child or a timer may have appeared since (the
  // Freezer detaches on the way out; the process runs on unchanged).
  WPCKPT_TRY(refuse_unsupported_state(r.pid, "dump", r.fds.ghost_limit, r.fds.file_locks, false, &frozen_areas));
  fault_point("frozen", r.cancel);
  WPCKPT_TRY(check_cancel(r));

  FdCapture fds;  // declared after `frozen`: sockets leave repair mode before the process runs again
  WPCKPT_TRY_ASSIGN(state::ProcessState st,
                    capture_state(r.pid, r.fds, r.cancel, frozen, smaps ? &*smaps : nullptr, fds, &frozen_areas));
  rep.warnings = std::move(fds.warnings);
  // Restore re-creates attached tracking as attached (lib/restore/agent_link.hpp).
  if (rep.attach.tracking != "agent" && st.tracking.contains("uffd_fd")) st.tracking["attached"] = true;
  WPCKPT_TRY(check_cancel(r));

  checkpoint::CaptureOptions copts;
  copts.target_stopped = true;
  copts.progress = r.progress;
  copts.frozen_read_buffer = &frozen_read_buffer;
  copts.link = &link;
  copts.frozen_areas = &frozen_areas;
  copts.rearm = r.leave_running || r.snapshot;  // killed after: nothing to track any more
  std::optional<ForkedCopy> copy;  // a snapshot's: released after the commit
  Clock::time_point t_resumed;
  if (r.snapshot) {
    WPCKPT_TRY_ASSIGN(copts.not_copied_by_fork, not_copied_by_fork(r.pid, smaps ? &*smaps : nullptr));
    copts.snapshot_copy = r.snapshot_copy;
    copts.copy_from_fork = [&](bool fork) -> Result<pid_t> {
      if (fork) {
        WPCKPT_TRY_ASSIGN(ForkedCopy made, ForkedCopy::make(frozen));
        copy.emplace(std::move(made));
      }
      fds.repaired.release();
      fds.network_lock.release();
      frozen.detach();
      t_resumed = Clock::now();
      return fork ? copy->pid() : 0;
    };
  }
  auto t_mem = Clock::now();
  auto captured = checkpoint::capture_memory(r.pid, *writer, target.parent(), copts);
  if (!captured && copy && copy->died())
    return make_error(ESRCH, "snapshot", "the copy of process " + std::to_string(r.pid) + " was killed while it was read (" +
                                             captured.error().message() + "); the process runs on")
        .with_hint("most likely out of memory: a snapshot holds every page the process writes until the copy is read "
                   "(see the kernel log); free memory, or freeze the process for the whole dump instead "
                   "(dump -R --no-cow-copy, or pre-dump + dump)");
  WPCKPT_TRY_ASSIGN(rep.capture, std::move(captured));
  if (r.snapshot) {
    rep.snapshot.taken = true;
    rep.snapshot.mechanism = rep.capture.snapshot_mechanism;
    rep.snapshot.copy_done_seconds = std::chrono::duration<double>(Clock::now() - t_resumed).count();
    rep.snapshot.pages_read_frozen = rep.capture.pages_read_before_fork;
  }
  uint64_t mem_total = micros(Clock::now() - t_mem);
  rep.memwrite_time = micros(rep.capture.write_seconds);
  rep.memdump_time = mem_total - std::min(mem_total, rep.memwrite_time);
  WPCKPT_TRY(check_cancel(r));

  rep.threads = st.threads.size();
  rep.mappings = st.mappings.size();
  rep.fds = st.fds.size();
  rep.pages_scanned = rep.capture.pages_scanned;
  rep.pages_skipped_parent = rep.capture.pages_skipped_parent;
  rep.pages_written = rep.capture.pages_written;
  auto t_captured = Clock::now();
  rep.frozen_time = micros((r.snapshot ? t_resumed : t_captured) - t_frozen);
  rep.left_running = r.leave_running || r.snapshot;
  fault_point("captured", r.cancel);
  WPCKPT_TRY(check_cancel(r));
  // The process is no longer needed stopped: its state and pages are with the writer.
  if (r.leave_running || r.snapshot) {
    fds.repaired.release();
    fds.network_lock.release();
    frozen.detach();
    rep.stopped_time = rep.frozen_time;
  }
  // The state's files need nothing of the process: written after the
  // capture, while the workers compress the last pages (capture_memory
  // handed them over). On a thread of its own during the capture, starved
  // by the workers, the JSON once kept a final dump stopped 2 ms longer.
  WPCKPT_TRY_ASSIGN(std::string doc, state::serialize(st));
  WPCKPT_TRY(writer->add_file(state::kProcessStateFile, std::as_bytes(std::span(doc.data(), doc.size()))));
  for (const auto& [name, bytes] : fds.files)
    WPCKPT_TRY(writer->add_file(name, std::as_bytes(std::span(bytes.data(), bytes.size()))));

  nlohmann::json meta = report_json(rep);
  meta.erase("commit_time");  // known only after the manifest is written
  meta.erase("stopped_time");
  writer->set_metadata("dump", meta);
  writer->set_metadata("attach", attach_json(rep.attach));
  auto t_commit = Clock::now();
  WPCKPT_TRY_ASSIGN(rep.commit, writer->commit());
  rep.commit_time = micros(Clock::now() - t_commit);
  checkpoint::fill_commit_stats(rep.capture, rep.commit);
  if (copy) {
    auto reaped = copy->release();
    if (reaped) rep.snapshot.reap_stop_seconds = *reaped;
    else rep.warnings.push_back("the snapshot's copy of the process could not be reaped (" + reaped.error().message() +
                                "): a zombie child is left until the process exits or waits for it");
  }
  if (!r.leave_running && !r.snapshot) {
    rep.stopped_time = micros(Clock::now() - t_frozen);  // the SIGKILL is next: it never runs again
    if (r.reap_later) {
      ::kill(r.pid, SIGKILL);  // stopped by us: it never returns to user space
      rep.dying = std::make_shared<ptrace::Freezer>(std::move(frozen));
    } else {
      frozen.kill();
    }
    fds.repaired.disarm();  // closed in repair mode: the peers see no FIN, no reset
    fds.network_lock.disarm();  // their packets stay dropped until the restore
  }
  log::debug("dump of {}: frozen {} us, {} pages written", r.pid, rep.frozen_time, rep.pages_written);
  return rep;
}

}  // namespace

Result<DumpReport> dump_process(const DumpRequest& r) {
  // Before anything is created or stopped: a kernel (or switches) without
  // what a dump needs, a process the user behind wpckpt may not checkpoint
  // (lib/ptrace/may_trace.hpp), or what cannot be saved, is refused as it is.
  WPCKPT_TRY(ptrace::check_may_trace(r.pid));
  WPCKPT_TRY(probe::require_features("dump"));
  // A child forked after the check is refused by dump_one, which leaves the
  // process as it was: dumped again, with its tree when it still has one.
  for (int attempt = 1;; ++attempt) {
    auto rep = has_children(r.pid) ? dump_tree(r) : dump_one(r);
    if (rep || !is_children_refusal(rep.error())) return rep;
    // A child appeared between the check and the freeze in every attempt.
    if (attempt == 3) return kept_changing("dump", r.pid);
  }
}

}  // namespace wpckpt::dump
