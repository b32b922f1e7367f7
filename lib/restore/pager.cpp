#include "lib/restore/pager.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>

#include "lib/base/uapi/userfaultfd.hpp"

namespace wpckpt::restore {

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kBlockPages = 16;  // a fault brings in its 64 KiB block; the background copies in such chunks
using Clock = std::chrono::steady_clock;

std::string hex_range(uint64_t a, uint64_t b) {
  char buf[64];
  snprintf(buf, sizeof buf, "0x%llx-0x%llx", static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  return buf;
}

// One address space being filled: the restored process, or a child it forked
// while pages were still missing (its own uffd came with the FORK event).
struct Target {
  int uffd = -1;
  UniqueFd owned;  // a fork child's uffd; the first target's belongs to the caller
  RegionMap map;
  bool gone = false;  // its mm is gone (exit, exec): ESRCH
  bool unregistered = false;  // finish() gave its ranges back
};

struct Fault {
  Target* target;
  uint64_t addr;
  Clock::time_point read_at;
};

// Retry: a copy failed with EAGAIN because an event is unread; read it, then try again.
enum class Fill { Ok, Retry };

class Pager {
 public:
  Pager(LazyPageSource& source, PagerOptions options)
      : source_(source), start_fd_(options.start_fd), fork_sink_(options.fork_sink) {
    auto first = std::make_unique<Target>();
    first->uffd = options.uffd;
    first->map = RegionMap(std::move(options.regions));
    targets_.push_back(std::move(first));
    block_.resize(kBlockPages * kPage);
    hot_ = std::move(options.hot);
  }

  Result<PagerStats> run() {
    const auto t0 = Clock::now();
    WPCKPT_TRY(copy_hot());
    WPCKPT_TRY(wait_for_start());
    auto pass = source_.for_each_run([this](uint64_t addr, std::span<const std::byte> data, uint64_t zero_pages) {
      return background_run(addr, data, zero_pages);
    });
    if (!pass && !all_gone()) return std::move(pass).error();
    WPCKPT_TRY(drain());
    for (const auto& t : targets_) {
      if (t->gone) continue;
      if (uint64_t left = t->map.count(PageState::Pending); left > 0)
        return make_error(EIO, "lazy restore", std::to_string(left) + " pages were in no run of the image")
            .with_hint("this is a wpckpt bug");
    }
    WPCKPT_TRY(settle());
    stats_.process_gone = targets_.front()->gone;
    stats_.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    percentiles();
    return stats_;
  }

 private:
  bool all_gone() const {
    return std::all_of(targets_.begin(), targets_.end(), [](const auto& t) { return t->gone; });
  }

  // What the restore itself and the first instructions touch (stack tops,
  // TLS): in before they ask, so that no fault waits for a busy pager then.
  Result<void> copy_hot() {
    for (uint64_t page : hot_) {
      if (!targets_.front()->map.find(page)) continue;  // not lazy memory (a file mapping, a guard gap)
      WPCKPT_TRY(drain());
      for (;;) {
        uint64_t before = stats_.pages_faulted;
        WPCKPT_TRY_ASSIGN(Fill f, serve(Fault{targets_.front().get(), page, Clock::now()}));
        stats_.pages_prefetched += stats_.pages_faulted - before;
        stats_.pages_faulted = before;
        if (f == Fill::Ok) break;
        WPCKPT_TRY(drain());
      }
    }
    return ok();
  }

  // Faults are served from the start; the background pass waits for the
  // restore to let the process run (it would only slow the restore down).
  Result<void> wait_for_start() {
    for (;;) {
      std::vector<pollfd> fds{{start_fd_, POLLIN, 0}};
      for (const auto& t : targets_) fds.push_back({t->uffd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        return errno_error("poll", "lazy restore pager");
      }
      WPCKPT_TRY(drain());
      if (fds[0].revents) return ok();
    }
  }

  // Every pending message read, every fault served.
  Result<void> drain() {
    for (;;) {
      for (size_t i = 0; i < targets_.size(); ++i)
        if (!targets_[i]->gone) WPCKPT_TRY(read_messages(*targets_[i]));
      if (faults_.empty()) return ok();
      while (!faults_.empty()) {
        WPCKPT_TRY_ASSIGN(Fill f, serve(faults_.front()));
        if (f == Fill::Retry) break;
        latencies_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - faults_.front().read_at).count());
        faults_.pop_front();
      }
    }
  }

  Result<void> read_messages(Target& t) {
    uapi::UffdMsg msgs[64];
    for (;;) {
      ssize_t n = ::read(t.uffd, msgs, sizeof msgs);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return ok();
      if (n < 0) return errno_error("read userfaultfd", "lazy restore pager");
      const size_t count = static_cast<size_t>(n) / sizeof(uapi::UffdMsg);
      const auto now = Clock::now();
      for (size_t i = 0; i < count; ++i) {
        if (msgs[i].event == uapi::kEventPagefault) {
          faults_.push_back(Fault{&t, msgs[i].arg.pagefault.address, now});
          ++stats_.faults;
        } else {
          WPCKPT_TRY(apply_event(t, msgs[i]));
        }
      }
      if (count < std::size(msgs)) return ok();
    }
  }

  Result<void> apply_event(Target& t, const uapi::UffdMsg& m) {
    ++stats_.events;
    switch (m.event) {
      case uapi::kEventRemove: t.map.remove(m.arg.remove.start, m.arg.remove.end); return ok();
      case uapi::kEventUnmap: t.map.unmap(m.arg.remove.start, m.arg.remove.end); return ok();
      case uapi::kEventRemap: t.map.remap(m.arg.remap.from, m.arg.remap.to, m.arg.remap.len); return ok();
      case uapi::kEventFork: {
        // The child's pages missing in the parent are missing in it too: it
        // is served the same way, through the uffd the kernel gave us for it.
        auto child = std::make_unique<Target>();
        child->owned.reset(static_cast<int>(m.arg.fork.ufd));
        child->uffd = child->owned.get();
        ::fcntl(child->uffd, F_SETFL, O_NONBLOCK);
        child->map = t.map.forked();
        WPCKPT_TRY(send_fd(child->uffd));
        targets_.push_back(std::move(child));
        ++stats_.forks;
        return ok();
      }
      default: return make_error(EPROTO, "read userfaultfd", "unknown event " + std::to_string(m.event));
    }
  }

  Result<Fill> serve(const Fault& f) {
    Target& t = *f.target;
    if (t.gone) return Fill::Ok;
    const uint64_t page = f.addr - f.addr % kPage;
    LazyRegion* r = t.map.find(page);
    if (!r || r->at(page) != PageState::Pending) return zero_page(t, r, page);
    // The whole block around the page, as far as it is this region's and still due.
    const uint64_t block = kBlockPages * kPage;
    const uint64_t lo = std::max(r->start, page - page % block), hi = std::min(r->end, page - page % block + block);
    std::span<std::byte> buf(block_.data(), hi - lo);
    WPCKPT_TRY(source_.read(r->image_start + (lo - r->start), buf));
    return copy_due(t, *r, lo, hi, buf.data(), stats_.pages_faulted);
  }

  // UFFDIO_COPY of every Pending page of [lo, hi) (inside region r) from src.
  Result<Fill> copy_due(Target& t, LazyRegion& r, uint64_t lo, uint64_t hi, const std::byte* src, uint64_t& counter) {
    for (uint64_t a = lo; a < hi;) {
      if (r.at(a) != PageState::Pending) {
        a += kPage;
        continue;
      }
      uint64_t e = a;
      while (e < hi && r.at(e) == PageState::Pending) e += kPage;
      WPCKPT_TRY_ASSIGN(Fill f, copy(t, r, a, e, src + (a - lo), counter));
      if (f == Fill::Retry) return f;
      a = e;
    }
    return Fill::Ok;
  }

  Result<Fill> copy(Target& t, LazyRegion& r, uint64_t a, uint64_t end, const std::byte* src, uint64_t& counter) {
    const uint64_t base = a;
    while (a < end && !t.gone) {
      uapi::UffdioCopy c{a, reinterpret_cast<uint64_t>(src + (a - base)), end - a, 0, 0};
      int rc = ::ioctl(t.uffd, uapi::kUffdioCopy, &c);
      int err = errno;
      if (c.copy > 0) {
        for (uint64_t p = a; p < a + static_cast<uint64_t>(c.copy); p += kPage) r.at(p) = PageState::Done;
        counter += static_cast<uint64_t>(c.copy) / kPage;
        a += static_cast<uint64_t>(c.copy);
        continue;  // a partial copy: the next call says why it stopped
      }
      if (rc == 0) break;
      if (c.copy < 0) err = static_cast<int>(-c.copy);
      WPCKPT_TRY_ASSIGN(Fill f, settle(t, r, a, end, err, "UFFDIO_COPY"));
      if (f == Fill::Retry) return f;
      a = (err == EEXIST) ? a + kPage : end;
    }
    return Fill::Ok;
  }

  // What a failed copy or zeropage at `a` means.
  Result<Fill> settle(Target& t, LazyRegion& r, uint64_t a, uint64_t end, int err, const char* what) {
    switch (err) {
      case EAGAIN: return Fill::Retry;
      case EEXIST:  // already present (another fault's copy): only wake whoever waits for it
        r.at(a) = PageState::Done;
        wake(t, a);
        return Fill::Ok;
      case ENOENT:  // no longer mapped or registered: the UNMAP event follows
        for (uint64_t p = a; p < end; p += kPage) r.at(p) = PageState::Done;
        return Fill::Ok;
      case ESRCH:
        t.gone = true;
        return Fill::Ok;
      default: return make_error(err, what, hex_range(a, end) + " of the restored process");
    }
  }

  Result<void> send_fd(int fd) {
    if (fork_sink_ < 0) return ok();
    char byte = 'F';
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    while (::sendmsg(fork_sink_, &msg, MSG_NOSIGNAL) < 0) {
      if (errno != EINTR) return errno_error("send a fork child's userfaultfd", "to wpckpt restore");
    }
    return ok();
  }

  // Zero (or already present) pages: ZEROPAGE, and a wake if it was there.
  Result<Fill> zero_page(Target& t, LazyRegion* r, uint64_t page) {
    uapi::UffdioZeropage z{{page, kPage}, 0, 0};
    int rc = ::ioctl(t.uffd, uapi::kUffdioZeropage, &z);
    if (rc == 0 || z.zeropage == static_cast<int64_t>(kPage)) {
      ++stats_.pages_zero;
      if (r) r->at(page) = PageState::Done;
      return Fill::Ok;
    }
    int err = z.zeropage < 0 ? static_cast<int>(-z.zeropage) : errno;
    if (err == EEXIST || err == ENOENT) {
      wake(t, page);
      return Fill::Ok;
    }
    if (err == EAGAIN) return Fill::Retry;
    if (err == ESRCH) {
      t.gone = true;
      return Fill::Ok;
    }
    return make_error(err, "UFFDIO_ZEROPAGE", hex_range(page, page + kPage) + " of the restored process");
  }

  void wake(Target& t, uint64_t page) {
    uapi::UffdioRange range{page, kPage};
    (void)::ioctl(t.uffd, uapi::kUffdioWake, &range);
  }

  // One run of the background pass, copied chunk by chunk with every urgent
  // fault served in between.
  Result<void> background_run(uint64_t img, std::span<const std::byte> data, uint64_t zero_pages) {
    if (data.empty()) {
      mark_zero(img, img + zero_pages * kPage);
      return ok();
    }
    const size_t chunk = kBlockPages * kPage;
    for (size_t off = 0; off < data.size(); off += chunk) {
      auto piece = data.subspan(off, std::min(chunk, data.size() - off));
      for (;;) {
        WPCKPT_TRY(drain());
        if (all_gone()) return make_error(ESRCH, "lazy restore", "the restored process is gone");
        WPCKPT_TRY_ASSIGN(Fill f, copy_image_chunk(img + off, piece));
        if (f == Fill::Ok) break;
      }
    }
    return ok();
  }

  // Image pages [img, img + data.size()) into every target that still waits for them.
  Result<Fill> copy_image_chunk(uint64_t img, std::span<const std::byte> data) {
    const uint64_t img_end = img + data.size();
    for (size_t i = 0; i < targets_.size(); ++i) {
      Target& t = *targets_[i];
      for (LazyRegion& r : t.map.regions()) {
        if (t.gone) break;
        const uint64_t lo = std::max(img, r.image_start), hi = std::min(img_end, r.image_end());
        if (lo >= hi) continue;
        const uint64_t dlo = r.start + (lo - r.image_start), dhi = r.start + (hi - r.image_start);
        WPCKPT_TRY_ASSIGN(Fill f, copy_due(t, r, dlo, dhi, data.data() + (lo - img), stats_.pages_prefetched));
        if (f == Fill::Retry) return f;
      }
    }
    return Fill::Ok;
  }

  // Image pages that are zero stay missing: a fault gets ZEROPAGE, and after
  // the unregister the kernel's own fault gives zeros.
  void mark_zero(uint64_t img, uint64_t img_end) {
    for (const auto& t : targets_) {
      for (LazyRegion& r : t->map.regions()) {
        const uint64_t lo = std::max(img, r.image_start), hi = std::min(img_end, r.image_end());
        for (uint64_t p = lo; p < hi; p += kPage) {
          PageState& s = r.at(r.start + (p - r.image_start));
          if (s == PageState::Pending) s = PageState::Zero;
        }
      }
    }
  }

  // Everything is in: the ranges go back to ordinary memory (a zero page now
  // faults in as zero without us), waiting threads are woken.
  void finish() {
    for (const auto& t : targets_) {
      if (t->gone || t->unregistered) continue;
      t->unregistered = true;
      for (const LazyRegion& r : t->map.regions()) {
        uapi::UffdioRange range{r.start, r.end - r.start};
        (void)::ioctl(t->uffd, uapi::kUffdioUnregister, &range);
      }
    }
  }

  // The pager's last act: unregister, then read until no event is under way.
  // An operation raises an event only on a registered area (it looks under
  // the mmap lock, which UNREGISTER takes for writing), but one that looked
  // before the unregister queues its message afterwards, maybe after our
  // last read; its thread (fork, munmap, mremap, madvise) then waits in the
  // kernel until the message is read or every copy of the uffd is closed
  // (fs/userfaultfd.c, userfaultfd_event_wait_completion), and a forked
  // child holds a copy of its parent's uffd from before that wait: a fork
  // caught so would wait forever. The kernel counts the events under way
  // (mmap_changing, raised under the mmap lock, lowered once the message was
  // read); a FORK read here adds a child, given back in turn.
  Result<void> settle() {
    for (;;) {
      WPCKPT_TRY(drain());
      finish();
      std::vector<pollfd> busy;
      for (const auto& t : targets_)
        if (!t->gone && event_under_way(*t)) busy.push_back({t->uffd, POLLIN, 0});
      if (busy.empty()) return ok();
      (void)::poll(busy.data(), busy.size(), 1);  // its message, or its thread lowering the count
    }
  }

  // Every copy ioctl first fails with EAGAIN while the count is raised; a
  // ZEROPAGE of length 0 asks that alone (EINVAL otherwise: nothing filled).
  static bool event_under_way(const Target& t) {
    uapi::UffdioZeropage z{{0, 0}, 0, 0};
    return ::ioctl(t.uffd, uapi::kUffdioZeropage, &z) != 0 && errno == EAGAIN;
  }

  void percentiles() {
    if (latencies_.empty()) return;
    auto at = [&](double q) {
      size_t k = std::min(latencies_.size() - 1, static_cast<size_t>(q * static_cast<double>(latencies_.size())));
      std::nth_element(latencies_.begin(), latencies_.begin() + static_cast<std::ptrdiff_t>(k), latencies_.end());
      return latencies_[k];
    };
    stats_.p50_us = at(0.50);
    stats_.p99_us = at(0.99);
    stats_.max_us = *std::max_element(latencies_.begin(), latencies_.end());
  }

  LazyPageSource& source_;
  int start_fd_;
  int fork_sink_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::deque<Fault> faults_;
  std::vector<std::byte> block_;
  std::vector<double> latencies_;
  std::vector<uint64_t> hot_;
  PagerStats stats_;
};

}  // namespace

Result<PagerStats> run_pager(LazyPageSource& source, PagerOptions options) {
  Pager pager(source, std::move(options));
  return pager.run();
}

}  // namespace wpckpt::restore
