#include "lib/dump/pre_dump.hpp"

#include <chrono>
#include <memory>

#include "lib/dump/attach_json.hpp"
#include "lib/dump/image_target.hpp"
#include "lib/dump/tree_dump.hpp"
#include "lib/dump/tree_image.hpp"
#include "lib/dump/unsupported_state.hpp"
#include "lib/ptrace/may_trace.hpp"
#include "lib/probe/features.hpp"

namespace wpckpt::dump {

Result<PreDumpReport> pre_dump_process(const PreDumpRequest& r) {
  auto t0 = std::chrono::steady_clock::now();
  if (r.pid <= 0) return make_error(EINVAL, "pre-dump", "pid " + std::to_string(r.pid)).with_hint("give the pid of a running process");
  PreDumpReport rep;
  // Before the image directory is created: a kernel (or switches) without
  // what tracking needs, a process the user behind wpckpt may not checkpoint
  // (lib/ptrace/may_trace.hpp), or what the final dump would refuse, is
  // refused before anything is attached or created.
  WPCKPT_TRY(ptrace::check_may_trace(r.pid));
  WPCKPT_TRY(probe::require_features("pre-dump"));
  if (has_children(r.pid)) return pre_dump_tree(r);
  if (auto refused = refuse_unsupported_state(r.pid, "pre-dump", r.ghost_limit, r.file_locks);
      !refused) {
    // A child forked since the check above: a tree's pre-dump.
    if (is_children_refusal(refused.error())) return pre_dump_tree(r);
    return std::move(refused).error();
  }
  // The image's place first (a page server that refuses, a -D that exists):
  // a failure there leaves the process untouched.
  image::WriterOptions wopts;
  wopts.compress_level = r.compress_level;
  wopts.direct_io = r.direct_io;
  wopts.progress = r.progress;
  // A parent written as a tree (the process had children then): its image there.
  const auto parent = r.page_server ? r.prev_images_dir : member_parent(r.prev_images_dir, r.pid, r.pid);
  WPCKPT_TRY_ASSIGN(ImageTarget target,
                    open_image_target(r.images_dir, parent, r.page_server, image::ImageKind::PreDump, wopts));
  image::ImageWriter* writer = target.writer.get();
  // A process without tracking (no agent, or it lost what wpckpt attached)
  // is attached now; the capture below is then whole (a new token).
  WPCKPT_TRY_ASSIGN(rep.attach, attach::ensure_tracked(r.pid));
  checkpoint::CaptureOptions copts;
  copts.progress = r.progress;
  copts.events = r.events;
  WPCKPT_TRY_ASSIGN(rep.capture, checkpoint::capture_memory(r.pid, *writer, target.parent(), copts));
  writer->set_metadata("attach", attach_json(rep.attach));
  // Not checked again here: the capture has re-protected what it copied, so
  // a refusal now would throw this iteration away and make the next one
  // whole. A pre-dump image restores nothing by itself; the dump that ends
  // the chain checks again, frozen.
  WPCKPT_TRY_ASSIGN(rep.commit, writer->commit());
  checkpoint::fill_commit_stats(rep.capture, rep.commit);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace wpckpt::dump
