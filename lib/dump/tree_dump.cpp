#include "lib/dump/tree_dump.hpp"

#include <fmt/core.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>

#include "lib/base/log.hpp"
#include "lib/checkpoint/memory_capture.hpp"
#include "lib/checkpoint/page_prefetch.hpp"
#include "lib/dump/attach_json.hpp"
#include "lib/dump/fault_point.hpp"
#include "lib/dump/image_target.hpp"
#include "lib/dump/mapping_capture.hpp"
#include "lib/dump/state_capture.hpp"
#include "lib/dump/tree_fds.hpp"
#include "lib/dump/tree_image.hpp"
#include "lib/dump/tree_members.hpp"
#include "lib/dump/tree_snapshot.hpp"
#include "lib/dump/unsupported_state.hpp"
#include "lib/probe/features.hpp"
#include "lib/ptrace/may_trace.hpp"
#include "tracker/agent_link.hpp"

namespace wpckpt::dump {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t micros(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

constexpr int kFreezeAttempts = 3;
constexpr size_t kWarmMembers = 4;

Result<void> refuse_page_server(bool to_page_server, std::string_view verb, pid_t root) {
  if (!to_page_server) return ok();
  return make_error(EOPNOTSUPP, std::string(verb), fmt::format("process {} has children: a process tree", root))
      .with_hint("a tree's image goes to a local -D only (not yet to a page server); dump locally and copy the "
                 "directory. Nothing was stopped");
}

// Error code of an attempt that met a tree that changed while it froze.
constexpr int kTreeChanged = EAGAIN;

bool tree_changed(const Error& e) { return e.err == kTreeChanged && e.op == "freeze tree"; }

// A step for member `pid` that failed because the member exited meanwhile:
// the tree changed (tried again, or said so after the last attempt).
Error member_failed(Error e, std::string_view verb, pid_t pid, pid_t root, bool last_attempt) {
  if (pid == root || !member_gone(pid)) return e;
  return last_attempt ? kept_changing(verb, root) : make_error(kTreeChanged, "freeze tree");
}

// The tree as it runs, checked as a whole and member by member.
Result<state::TreeState> checked_tree(pid_t root, std::string_view verb, uint64_t ghost_limit, bool file_locks,
                                      bool last_attempt) {
  WPCKPT_TRY_ASSIGN(state::TreeState tree, read_tree(root));
  WPCKPT_TRY(refuse_unrestorable_tree(tree, verb));
  for (const auto& m : tree.processes) {
    if (m.zombie) continue;
    auto checked = ptrace::check_may_trace(m.pid);
    if (checked) checked = refuse_unsupported_state(m.pid, verb, ghost_limit, file_locks, true);
    if (!checked) return member_failed(std::move(checked).error(), verb, m.pid, root, last_attempt);
  }
  return tree;
}

// checked_tree, read again (at most kFreezeAttempts times) while members exit.
Result<state::TreeState> settled_tree(pid_t root, std::string_view verb, uint64_t ghost_limit, bool file_locks) {
  for (int attempt = 1;; ++attempt) {
    auto tree = checked_tree(root, verb, ghost_limit, file_locks, attempt == kFreezeAttempts);
    if (tree || !tree_changed(tree.error())) return tree;
  }
}

std::vector<pid_t> live_pids(const state::TreeState& tree) {
  std::vector<pid_t> out;
  for (const auto& m : tree.processes)
    if (!m.zombie) out.push_back(m.pid);
  return out;
}

std::vector<TreeMemberReport> member_reports(const state::TreeState& tree) {
  std::vector<TreeMemberReport> out;
  for (const auto& m : tree.processes) out.push_back({m.pid, m.ppid, m.comm, m.zombie, 0, 0, 0, false});
  return out;
}

// One live member of a dump: its image, tracking, frozen threads, state.
struct Member {
  pid_t pid = 0;
  ImageTarget target;
  attach::AttachReport attach;
  std::optional<std::vector<tracker::Vma>> smaps;
  std::optional<ptrace::Freezer> frozen;
  FdCapture fds;  // after `frozen`: sockets leave repair mode before the process runs again
  std::optional<ForkedCopy> copy;  // dump -R's copy-on-write copy: released after the commit
  state::ProcessState st;
  checkpoint::CaptureStats capture;
  uint64_t prefetched = 0;  // its pages read before the freeze
};

Result<DumpReport> dump_tree_once(const DumpRequest& r, bool last_attempt) {
  DumpReport rep;
  fds::CaptureOptions fd_options = r.fds;
  WPCKPT_TRY_ASSIGN(state::TreeState tree,
                    checked_tree(r.pid, "dump", r.fds.ghost_limit, r.fds.file_locks, last_attempt));
  fd_options.tree_pids = live_pids(tree);
  WPCKPT_TRY_ASSIGN(TreeImageDir out, TreeImageDir::create(r.images_dir));
  image::WriterOptions wopts;
  wopts.compress_level = r.compress_level;
  wopts.direct_io = r.direct_io;
  std::vector<std::unique_ptr<Member>> members;
  for (pid_t pid : live_pids(tree)) {
    auto m = std::make_unique<Member>();
    m->pid = pid;
    WPCKPT_TRY_ASSIGN(m->target, open_image_target(out.member(pid), member_parent(r.prev_images_dir, pid, r.pid),
                                                   std::nullopt, image::ImageKind::Dump, wopts));
    // Workers warmed before the freeze for a small tree only: each costs
    // two threads and ~6 MiB, and a large tree's freeze is its copy anyway.
    if (live_pids(tree).size() <= kWarmMembers) m->target.writer->warm_up(m->target.parent_pages_written());
    auto attached = attach::ensure_tracked(pid);
    if (!attached) return member_failed(std::move(attached).error(), "dump", pid, r.pid, last_attempt);
    m->attach = *attached;
    if (auto smaps = tracker::read_smaps(pid)) m->smaps = std::move(*smaps);
    members.push_back(std::move(m));
  }
  // Each member's pages written since its parent, read once before the
  // freeze (page_prefetch.hpp), within one bound for the whole tree.
  const uint64_t share = checkpoint::kPrefetchMaxPages / members.size();
  for (auto& m : members) {
    if (!m->target.parent() || !ptrace::check_may_trace(m->pid)) continue;
    auto link = tracker::AgentLink::attach(m->pid);
    if (!link) continue;
    const checkpoint::PrefetchStats warmed =
        checkpoint::prefetch_before_freeze(m->pid, link->uffd(), m->smaps ? &*m->smaps : nullptr, share);
    rep.pages_prefetched += warmed.pages_read;
    rep.prefetch_time += static_cast<uint64_t>(warmed.seconds * 1e6);
    m->prefetched = warmed.pages_read;
  }
  // And more where the prefetch found more than the parent's delta.
  if (members.size() <= kWarmMembers)
    for (auto& m : members)
      m->target.writer->warm_up(checkpoint::expected_delta_pages(m->target.parent_pages_written(), m->prefetched));
  if (r.cancel && r.cancel->load()) return interrupted_error(r.pid);
  probe_mapping_features();
  checkpoint::probe_capture_features();

  // Top down: a frozen parent forks no more, so its children are final.
  auto t_freeze = Clock::now();
  rep.freeze_began = t_freeze;
  for (auto& m : members) {
    auto frozen = ptrace::Freezer::freeze(m->pid);
    if (!frozen) return member_failed(std::move(frozen).error(), "dump", m->pid, r.pid, last_attempt);
    m->frozen.emplace(std::move(frozen).value());
  }
  auto t_frozen = Clock::now();
  rep.freezing_time = micros(t_frozen - t_freeze);
  WPCKPT_TRY_ASSIGN(state::TreeState now, read_tree(r.pid));
  if (!same_tree(tree, now)) {
    if (!last_attempt) return make_error(kTreeChanged, "freeze tree");
    return kept_changing("dump", r.pid);
  }
  for (auto& m : members) {
    WPCKPT_TRY(ptrace::check_may_trace(m->pid));
    WPCKPT_TRY(refuse_unsupported_state(m->pid, "dump", r.fds.ghost_limit, r.fds.file_locks, true));
  }
  fault_point("frozen", r.cancel);

  for (auto& m : members) {
    WPCKPT_TRY_ASSIGN(m->st, capture_state(m->pid, fd_options, r.cancel, *m->frozen, m->smaps ? &*m->smaps : nullptr, m->fds));
    if (m->attach.tracking != "agent" && m->st.tracking.contains("uffd_fd")) m->st.tracking["attached"] = true;
    for (auto& w : m->fds.warnings) rep.warnings.push_back(fmt::format("process {}: {}", m->pid, w));
  }
  std::vector<std::pair<pid_t, state::ProcessState*>> states;
  for (auto& m : members) states.emplace_back(m->pid, &m->st);
  WPCKPT_TRY(assign_shared_ids(states, "dump"));

  auto t_mem = Clock::now();
  Clock::time_point t_resumed;
  if (r.snapshot) {
    // dump -R: the tree runs on once every member has its copy (tree_snapshot.hpp).
    std::vector<SnapshotMember> snap;
    snap.reserve(members.size());
    for (auto& m : members)
      snap.push_back({m->pid, &*m->frozen, m->target.writer.get(), m->target.parent(), m->smaps ? &*m->smaps : nullptr,
                      {}, std::nullopt});
    checkpoint::CaptureOptions copts;
    copts.target_stopped = true;
    copts.progress = r.progress;
    copts.snapshot_copy = r.snapshot_copy;
    auto let_run = [&] {
      for (auto& m : members) {
        m->fds.repaired.release();
        m->fds.network_lock.release();
        m->frozen->detach();
      }
    };
    auto taken = capture_tree_snapshot(snap, copts, let_run);
    for (size_t i = 0; i < members.size(); ++i) {
      if (snap[i].copy) members[i]->copy.emplace(std::move(*snap[i].copy));
      members[i]->capture = snap[i].capture;
    }
    if (!taken) return std::move(taken).error();
    t_resumed = taken->resumed;
    rep.snapshot.taken = true;
    rep.snapshot.mechanism = members.front()->capture.snapshot_mechanism;
    rep.snapshot.copy_done_seconds = std::chrono::duration<double>(Clock::now() - t_resumed).count();
    for (auto& m : members) rep.snapshot.pages_read_frozen += m->capture.pages_read_before_fork;
  } else {
    for (auto& m : members) {
      if (r.cancel && r.cancel->load()) return interrupted_error(r.pid);
      checkpoint::CaptureOptions copts;
      copts.target_stopped = true;
      copts.progress = r.progress;
      copts.rearm = r.leave_running;  // killed after: nothing to track any more
      WPCKPT_TRY_ASSIGN(m->capture, checkpoint::capture_memory(m->pid, *m->target.writer, m->target.parent(), copts));
    }
  }
  for (auto& m : members) {
    WPCKPT_TRY_ASSIGN(std::string doc, state::serialize(m->st));
    WPCKPT_TRY(m->target.writer->add_file(state::kProcessStateFile, std::as_bytes(std::span(doc.data(), doc.size()))));
    for (const auto& [name, bytes] : m->fds.files)
      WPCKPT_TRY(m->target.writer->add_file(name, std::as_bytes(std::span(bytes.data(), bytes.size()))));
  }
  auto t_captured = Clock::now();
  rep.frozen_time = micros((r.snapshot ? t_resumed : t_captured) - t_frozen);
  double write_seconds = 0;
  for (auto& m : members) write_seconds += m->capture.write_seconds;
  rep.memwrite_time = static_cast<uint64_t>(write_seconds * 1e6);
  rep.memdump_time = micros(t_captured - t_mem) - std::min(micros(t_captured - t_mem), rep.memwrite_time);
  rep.left_running = r.leave_running || r.snapshot;
  fault_point("captured", r.cancel);
  if (r.cancel && r.cancel->load()) return interrupted_error(r.pid);
  // As one process's dump: the tree is no longer needed stopped once its
  // states and pages are with the writers.
  if (rep.left_running) {
    for (auto& m : members) {
      m->fds.repaired.release();
      m->fds.network_lock.release();
      m->frozen->detach();
    }
    rep.stopped_time = rep.frozen_time;
  }

  // Every image, then tree.json: until that rename there is no image at -D.
  auto t_commit = Clock::now();
  rep.processes = member_reports(tree);
  for (auto& m : members) {
    DumpReport one;
    one.freezing_time = rep.freezing_time;
    one.frozen_time = rep.frozen_time;
    one.threads = m->st.threads.size();
    one.mappings = m->st.mappings.size();
    one.fds = m->st.fds.size();
    one.pages_written = m->capture.pages_written;
    one.left_running = rep.left_running;
    nlohmann::json meta = report_json(one);
    meta.erase("commit_time");
    meta.erase("stopped_time");
    m->target.writer->set_metadata("dump", meta);
    m->target.writer->set_metadata("attach", attach_json(m->attach));
    WPCKPT_TRY_ASSIGN(image::CommitInfo info, m->target.writer->commit());
    checkpoint::fill_commit_stats(m->capture, info);
    add_capture(rep.capture, m->capture, m->pid, r.prev_images_dir && !m->target.parent());
    rep.commit.bytes_compressed += info.bytes_compressed;
    rep.commit.bytes_raw += info.bytes_raw;
    rep.commit.pages_stored += info.pages_stored;
    rep.commit.pages_zero += info.pages_zero;
    rep.threads += one.threads;
    rep.mappings += one.mappings;
    rep.fds += one.fds;
    for (auto& p : rep.processes)
      if (p.pid == m->pid)
        p = {m->pid, m->st.ppid, m->st.comm, false, one.threads, m->capture.pages_written,
             m->capture.bytes_compressed, m->capture.incremental};
  }
  WPCKPT_TRY(out.commit(tree));
  rep.commit.dir = r.images_dir;
  rep.commit_time = micros(Clock::now() - t_commit);
  rep.pages_scanned = rep.capture.pages_scanned;
  rep.pages_skipped_parent = rep.capture.pages_skipped_parent;
  rep.pages_written = rep.capture.pages_written;
  rep.attach = members.front()->attach;

  if (rep.left_running) {
    for (auto& m : members) {
      if (!m->copy) continue;
      auto reaped = m->copy->release();
      if (!reaped)
        rep.warnings.push_back(fmt::format("process {}: its copy could not be reaped ({}): a zombie child is left until "
                                           "it exits or waits for it", m->pid, reaped.error().message()));
    }
  } else {
    // Children first: none of them runs again, and no parent sees one exit.
    rep.stopped_time = micros(Clock::now() - t_frozen);
    for (auto it = members.rbegin(); it != members.rend(); ++it) {
      (*it)->frozen->kill();
      (*it)->fds.repaired.disarm();
      (*it)->fds.network_lock.disarm();
    }
  }
  log::debug("dump of the tree of {}: {} processes, frozen {} us, {} pages written", r.pid, tree.processes.size(),
             rep.frozen_time, rep.pages_written);
  return rep;
}

// One live member's pre-dump image, committed inside the tree's directory.
struct MemberPreDump {
  attach::AttachReport attach;
  checkpoint::CaptureStats capture;
  image::CommitInfo info;
  bool new_process = false;  // not in the parent image
};

Result<MemberPreDump> pre_dump_member(const PreDumpRequest& r, const TreeImageDir& out,
                                      const image::WriterOptions& wopts, TreeMemberReport& p) {
  MemberPreDump d;
  const auto parent = member_parent(r.prev_images_dir, p.pid, r.pid);
  d.new_process = r.prev_images_dir && !parent;
  WPCKPT_TRY_ASSIGN(ImageTarget target,
                    open_image_target(out.member(p.pid), parent, std::nullopt, image::ImageKind::PreDump, wopts));
  WPCKPT_TRY_ASSIGN(d.attach, attach::ensure_tracked(p.pid));
  checkpoint::CaptureOptions copts;
  copts.progress = r.progress;
  // The caller's event queue reads the root's faults (iterate opened it for -t).
  if (p.pid == r.pid) copts.events = r.events;
  WPCKPT_TRY_ASSIGN(d.capture, checkpoint::capture_memory(p.pid, *target.writer, target.parent(), copts));
  target.writer->set_metadata("attach", attach_json(d.attach));
  WPCKPT_TRY_ASSIGN(d.info, target.writer->commit());
  checkpoint::fill_commit_stats(d.capture, d.info);
  p.pages_written = d.capture.pages_written;
  p.bytes_compressed = d.capture.bytes_compressed;
  p.incremental = d.capture.incremental;
  return d;
}

}  // namespace

Error kept_changing(std::string_view verb, pid_t root) {
  return make_error(EAGAIN, std::string(verb), fmt::format("the process tree of {} kept changing while it was read", root))
      .with_hint("processes started or exited in every attempt; dump it when it forks less often. The processes "
                 "run on unchanged");
}

bool has_children(pid_t pid) {
  auto children = children_of(pid);
  return children && !children->empty();
}

void add_capture(checkpoint::CaptureStats& total, const checkpoint::CaptureStats& one, int pid, bool new_process) {
  bool first = total.pages_scanned == 0 && total.pages_written == 0 && total.areas == 0;
  total.pages_scanned += one.pages_scanned;
  total.pages_written += one.pages_written;
  total.pages_stored += one.pages_stored;
  total.pages_zero += one.pages_zero;
  total.pages_skipped_parent += one.pages_skipped_parent;
  total.bytes_raw += one.bytes_raw;
  total.bytes_compressed += one.bytes_compressed;
  total.scan_seconds += one.scan_seconds;
  total.copy_seconds += one.copy_seconds;
  total.write_seconds += one.write_seconds;
  total.dirty_rate_pages_per_s += one.dirty_rate_pages_per_s;
  if (!new_process) total.incremental = first ? one.incremental : total.incremental && one.incremental;
  if (!one.incremental && !new_process && total.whole_reason.empty()) total.whole_reason = fmt::format("process {}: {}", pid, one.whole_reason);
  total.epoch = std::max(total.epoch, one.epoch);
  // Only the root is scanned by events (the caller's queue reads its faults).
  total.event_faults += one.event_faults;
  total.events_lost += one.events_lost;
  total.event_window_seconds = std::max(total.event_window_seconds, one.event_window_seconds);
  total.cross_checked = total.cross_checked || one.cross_checked;
  total.areas += one.areas;
  total.areas_registered += one.areas_registered;
  total.areas_untracked += one.areas_untracked;
  total.pages_unreadable += one.pages_unreadable;
  // Areas a fork left at the same place (libraries, [vdso]) listed once.
  for (const auto& a : one.untracked) {
    auto same = std::find_if(total.untracked.begin(), total.untracked.end(), [&](const checkpoint::UntrackedArea& t) {
      return t.start == a.start && t.end == a.end && t.path == a.path && t.reason == a.reason;
    });
    if (same == total.untracked.end()) same = total.untracked.insert(total.untracked.end(), a);
    same->pids.push_back(pid);
  }
  // A process new since the parent image is read whole, by necessity too.
  if (first || (one.scan_mode == "full" && !new_process)) total.scan_mode = one.scan_mode;
  if (total.scan_mode_reason.empty() && !one.scan_mode_reason.empty() && !new_process)
    total.scan_mode_reason = fmt::format("process {}: {}", pid, one.scan_mode_reason);
}

Result<DumpReport> dump_tree(const DumpRequest& r) {
  WPCKPT_TRY(refuse_page_server(r.page_server.has_value(), "dump", r.pid));
  for (int attempt = 1;; ++attempt) {
    auto rep = dump_tree_once(r, attempt == kFreezeAttempts);
    if (rep || !tree_changed(rep.error())) return rep;
    log::debug("the tree of {} changed while it was frozen: attempt {} again", r.pid, attempt + 1);
  }
}

// A pre-dump captures each member as it runs, parents first. A member that
// exits meanwhile is left out with what was below it (their image would be
// of processes that no longer exist); the next pre-dump or the dump sees
// the tree as it is then.
Result<PreDumpReport> pre_dump_tree(const PreDumpRequest& r) {
  auto t0 = Clock::now();
  WPCKPT_TRY(refuse_page_server(r.page_server.has_value(), "pre-dump", r.pid));
  PreDumpReport rep;
  WPCKPT_TRY_ASSIGN(state::TreeState tree, settled_tree(r.pid, "pre-dump", r.ghost_limit, r.file_locks));
  WPCKPT_TRY_ASSIGN(TreeImageDir out, TreeImageDir::create(r.images_dir));
  image::WriterOptions wopts;
  wopts.compress_level = r.compress_level;
  wopts.direct_io = r.direct_io;
  const std::vector<TreeMemberReport> listed = member_reports(tree);
  for (TreeMemberReport p : listed) {
    auto still = std::find_if(tree.processes.begin(), tree.processes.end(), [&](auto& m) { return m.pid == p.pid; });
    if (still == tree.processes.end()) continue;  // below a member that exited
    if (!p.zombie) {
      auto captured = pre_dump_member(r, out, wopts, p);
      if (!captured) {
        if (p.pid == r.pid || !member_gone(p.pid)) return std::move(captured).error();
        log::debug("pre-dump of the tree of {}: process {} exited meanwhile, left out", r.pid, p.pid);
        drop_subtree(tree, p.pid);
        continue;
      }
      if (p.pid == r.pid) rep.attach = captured->attach;
      add_capture(rep.capture, captured->capture, p.pid, captured->new_process);
      rep.commit.bytes_compressed += captured->info.bytes_compressed;
      rep.commit.bytes_raw += captured->info.bytes_raw;
      rep.commit.pages_stored += captured->info.pages_stored;
      rep.commit.pages_zero += captured->info.pages_zero;
    }
    rep.processes.push_back(p);
  }
  WPCKPT_TRY(out.commit(tree));
  rep.commit.dir = r.images_dir;
  rep.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return rep;
}

}  // namespace wpckpt::dump
