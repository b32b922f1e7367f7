#include "tracker/events/event_probe.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "lib/base/unique_fd.hpp"
#include "tracker/events/event_reader.hpp"

namespace wpckpt::tracker {
namespace {

constexpr int kProbePages = 8;

// The child: waits for "go", maps and writes kProbePages pages, discards one,
// says "done", waits for the pipe to close, exits. Async-signal-safe calls only.
[[noreturn]] void probe_child(int go_fd, int done_fd) {
  char c;
  if (read(go_fd, &c, 1) != 1) _exit(1);
  long page = 4096;
  char* p = static_cast<char*>(mmap(nullptr, kProbePages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) _exit(1);
  for (int i = 0; i < kProbePages; ++i) p[i * page] = 1;
  madvise(p, page, MADV_DONTNEED);
  if (write(done_fd, "d", 1) != 1) _exit(1);
  while (read(go_fd, &c, 1) > 0) {
  }
  _exit(0);
}

ProbeOutcome run_probe() {
  if (!event_queue_built()) return {false, "not built: " + event_queue_missing()};
  int go[2], done[2];
  if (pipe2(go, O_CLOEXEC) != 0) return {false, std::string("pipe2: ") + strerror(errno)};
  if (pipe2(done, O_CLOEXEC) != 0) {
    close(go[0]);
    close(go[1]);
    return {false, std::string("pipe2: ") + strerror(errno)};
  }
  pid_t child = fork();
  if (child == 0) {
    close(go[1]);
    close(done[0]);
    probe_child(go[0], done[1]);
  }
  close(go[0]);
  close(done[1]);
  UniqueFd go_w(go[1]), done_r(done[0]);
  if (child < 0) return {false, std::string("fork: ") + strerror(errno)};
  ProbeOutcome out;
  auto reader = EventReader::start(child);
  if (!reader) {
    out = {false, reader.error().message()};
  } else {
    char c;
    if (write(go_w.get(), "g", 1) != 1 || read(done_r.get(), &c, 1) != 1) {
      out = {false, "the probe's child process did not run"};
    } else {
      EventWindow w = (*reader)->take_window();
      if (w.faults < kProbePages) {
        out = {false, "saw " + std::to_string(w.faults) + " of " + std::to_string(kProbePages) +
                          " write faults (tp_btf page_fault_user)"};
      } else if (w.changes < 2 || w.ranges.empty()) {
        out = {false, "did not see mmap and madvise (tp_btf sys_exit)"};
      } else {
        out = {true, "ok (tp_btf page_fault_user, page_fault_kernel, sys_exit, sched_process_exec, "
                     "mmap_lock_acquire_returned)"};
      }
    }
  }
  go_w = UniqueFd();
  int status = 0;
  waitpid(child, &status, 0);
  return out;
}

}  // namespace

std::vector<FeatureProbe> event_probes() {
  return {{kEventQueueFeature,
           "BPF event queue: write faults and address-space changes of the target, no scan",
           "pre-dumps scan the whole address space (cost grows with its size, not with the pages written); "
           "`watch` cannot run; `iterate` decides from each pre-dump's figures only",
           false, run_probe}};
}

}  // namespace wpckpt::tracker
