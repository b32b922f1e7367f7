// `wpckpt pre-dump`: write a delta of what a process wrote since its parent
// image (or everything, the first time) into a new image; the process keeps
// running. A process without the agent is attached first (lib/attach).
// The one place that orchestrates it (open the parent, create the writer,
// capture the memory, commit), used by the CLI and the benchmarks alike; `dump_process` (dump.hpp) is its frozen counterpart.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>

#include "dump-format/image.hpp"
#include "lib/attach/attach.hpp"
#include "lib/base/progress.hpp"
#include "lib/base/result.hpp"
#include "lib/dump/tree_report.hpp"
#include "lib/checkpoint/memory_capture.hpp"
#include "lib/net/remote_sink.hpp"

namespace wpckpt::dump {

struct PreDumpRequest {
  pid_t pid = 0;
  std::filesystem::path images_dir;
  std::optional<std::filesystem::path> prev_images_dir;  // with page_server: relative, resolved by the server
  std::optional<net::PageServerTarget> page_server;      // --page-server: nothing is written locally
  int compress_level = 1;
  bool direct_io = true;  // image::WriterOptions::direct_io
  bool file_locks = false;         // --file-locks: locks on files are accepted (the dump records them)
  uint64_t ghost_limit = 1 << 20;  // deleted open files up to this size are accepted (the dump saves them)
  ProgressFn progress;  // phases of the writer and "scan", "copy"
  // An event queue kept alive across iterations by the caller (`wpckpt
  // iterate`): the scan covers only what it names when it saw everything
  // since the parent (lib/checkpoint/event_scan.hpp). nullptr: full scan.
  checkpoint::EventTracking* events = nullptr;
};

struct PreDumpReport {
  attach::AttachReport attach;       // how the process is tracked (attached by this pre-dump?)
  checkpoint::CaptureStats capture;  // commit figures filled in
  image::CommitInfo commit;
  double seconds = 0;  // the whole pre-dump, parent opening to commit
  std::vector<TreeMemberReport> processes;  // a tree's members (tree_dump.hpp); empty for one process
};

// Nothing is left behind on failure: no image, tracking as it was (the next
// iteration then captures every area whole).
Result<PreDumpReport> pre_dump_process(const PreDumpRequest& request);

}  // namespace wpckpt::dump
