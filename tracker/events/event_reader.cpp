#include "tracker/events/event_reader.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "lib/base/feature.hpp"
#include "lib/base/log.hpp"
#include "lib/base/unique_fd.hpp"
#include "tracker/events/bpf_loader.hpp"
#include "tracker/events/event_probe.hpp"

namespace wpckpt::tracker {
namespace {

constexpr auto kDrainPeriod = std::chrono::milliseconds(5);
constexpr size_t kCompactAt = 1u << 22;  // sort+unique the page list past this many entries
constexpr int kMadvFree = 8;
constexpr unsigned kOpenFlagDirect = 040000;

double monotonic_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void compact(std::vector<uint64_t>& pages) {
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
}

// An open descriptor through which the kernel may write the process's
// memory without a fault: io_uring, or a file opened with O_DIRECT.
std::string pinning_descriptor(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return {};
  std::string found;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256];
    ssize_t n = readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    std::string link(target);
    if (link == "anon_inode:[io_uring]" || link == "anon_inode:[aio]" || link == "anon_inode:kvm-vm" ||
        link.rfind("/dev/vfio/", 0) == 0 || link.rfind("/dev/infiniband/", 0) == 0) {
      found = "it has " + link + " open (fd " + std::string(e->d_name) + "): the kernel or a device may write its "
              "memory without a fault";
      break;
    }
    if (link.empty() || link[0] != '/') continue;
    std::string info = "/proc/" + std::to_string(pid) + "/fdinfo/" + e->d_name;
    UniqueFd fd(open(info.c_str(), O_RDONLY | O_CLOEXEC));
    char buf[256];
    ssize_t len = fd.get() >= 0 ? read(fd.get(), buf, sizeof buf - 1) : -1;
    if (len <= 0) continue;
    buf[len] = '\0';
    const char* flags = strstr(buf, "flags:");
    if (flags != nullptr && (strtoul(flags + 6, nullptr, 8) & kOpenFlagDirect)) {
      found = "it has " + link + " open with O_DIRECT (fd " + e->d_name + ")";
      break;
    }
  }
  closedir(d);
  return found;
}

const char* pinning_call(uint32_t nr) {
  switch (nr) {
    case 2: case 257: case 437: return "opened a file with O_DIRECT";
    case 72: return "set O_DIRECT on a descriptor";
    case 16: return "used a userfaultfd of its own, KVM or VFIO";
    case 206: case 209: return "used Linux AIO";
    case 278: return "called vmsplice";
    case 311: return "called process_vm_writev";
    case 425: case 427: return "set up io_uring";
    case 440: return "called process_madvise";
    default: return "made a call that can write memory without a fault";
  }
}

class ThreadedReader final : public EventReader, private EventSink {
 public:
  ThreadedReader(pid_t pid, std::unique_ptr<BpfEventSource> source) : pid_(pid), source_(std::move(source)) {
    window_.start_s = monotonic_s();
    sticky_ = pinning_descriptor(pid);
    thread_ = std::thread([this] { run(); });
  }

  ~ThreadedReader() override {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  pid_t pid() const override { return pid_; }

  EventWindow take_window() override {
    std::string pinned = pinning_descriptor(pid_);
    std::lock_guard lock(mutex_);
    drain_locked();
    EventWindow out = std::move(window_);
    window_ = EventWindow{};
    out.end_s = monotonic_s();
    window_.start_s = out.end_s;
    wpckpt_event_counters c = source_->counters();
    out.lost = c.lost - lost_seen_;
    lost_seen_ = c.lost;
    compact(out.pages);
    for (const AddressRange& r : free_ranges_) out.ranges.push_back(r);
    if (sticky_.empty() && !pinned.empty()) sticky_ = pinned;
    if (!sticky_.empty()) out.incomplete = sticky_;
    else if (!failure_.empty()) out.incomplete = failure_;
    else if (out.lost > 0) out.incomplete = std::to_string(out.lost) + " event records were lost (ring buffer full)";
    else if (!foreign_.empty()) out.incomplete = foreign_;
    foreign_.clear();
    return out;
  }

  uint64_t lost_total() const override { return source_->counters().lost; }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
      drain_locked();
      wake_.wait_for(lock, kDrainPeriod, [this] { return stop_; });
    }
  }

  void drain_locked() {
    if (!failure_.empty()) return;
    auto n = source_->consume(*this);
    if (!n) {
      failure_ = "the event reader failed: " + n.error().message();
      log::warn("pid {}: {}", pid_, failure_);
    }
    if (window_.pages.size() >= kCompactAt) compact(window_.pages);
  }

  void on_fault(const wpckpt_fault_record& r) override {
    window_.pages.push_back(r.addr_kind & ~WPCKPT_EV_KIND_MASK);
    ++window_.faults;
  }

  void on_change(const wpckpt_change_record& r) override {
    uint64_t addr = r.addr_kind & ~WPCKPT_EV_KIND_MASK;
    switch (r.addr_kind & WPCKPT_EV_KIND_MASK) {
      case WPCKPT_EV_DISCARD:
        ++window_.changes;
        window_.ranges.push_back({addr, addr + r.len});
        if (r.detail == kMadvFree) free_ranges_.push_back({addr, addr + r.len});
        break;
      case WPCKPT_EV_REMAP:
        ++window_.changes;
        window_.ranges.push_back({addr, addr + std::max(r.len, r.len2)});
        if (r.addr2 != 0) window_.ranges.push_back({r.addr2, r.addr2 + r.len2});
        break;
      case WPCKPT_EV_MAP: ++window_.changes; break;
      case WPCKPT_EV_FORK:
        ++window_.changes;
        ++window_.forks;
        break;
      case WPCKPT_EV_EXEC:
        sticky_ = "the process called exec (a new address space)";
        break;
      case WPCKPT_EV_PINNING:
        if (sticky_.empty()) sticky_ = std::string("the process ") + pinning_call(r.detail);
        break;
      case WPCKPT_EV_FOREIGN:
        if (foreign_.empty())
          foreign_ = "process " + std::to_string(r.tid) + " accessed its memory from outside (process_vm_writev, "
                     "/proc/PID/mem, ptrace or a /proc reader)";
        break;
      default: break;
    }
  }

  pid_t pid_;
  std::unique_ptr<BpfEventSource> source_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  EventWindow window_;
  std::vector<AddressRange> free_ranges_;
  uint64_t lost_seen_ = 0;
  std::string sticky_, foreign_, failure_;
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<EventReader>> EventReader::start(pid_t pid) {
  if (feature_disabled(kEventQueueFeature)) {
    return Error{ENOTSUP, "start the event queue", std::string("(switched off by ") + kDisableFeaturesEnv + ")",
                 "drop --disable-feature bpf_fault_events to use it; meanwhile pre-dumps scan the whole address space"};
  }
  WPCKPT_TRY_ASSIGN(std::unique_ptr<BpfEventSource> source, BpfEventSource::open(pid));
  return std::unique_ptr<EventReader>(std::make_unique<ThreadedReader>(pid, std::move(source)));
}

}  // namespace wpckpt::tracker
