#include "lib/dump/tree_snapshot.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "lib/base/log.hpp"

namespace wpckpt::dump {
namespace {

// A member's thread asking for its copy (or only to say it is ready).
struct CopyRequest {
  size_t member = 0;
  bool fork = false;
  bool served = false;
  Result<pid_t> answer = pid_t{0};
};

}  // namespace

Result<TreeSnapshotTimes> capture_tree_snapshot(std::vector<SnapshotMember>& members,
                                                const checkpoint::CaptureOptions& options,
                                                const std::function<void()>& let_run) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<CopyRequest*> pending;
  // A member is settled once its copy is made (or it needs none) or its
  // thread returned (a failure before the copy): the tree may run on when all are.
  std::vector<char> settled(members.size(), 0);
  size_t settled_count = 0, finished = 0;
  auto settle = [&](size_t i) {
    if (!settled[i]) settled[i] = 1, ++settled_count;
  };
  std::vector<std::optional<Result<checkpoint::CaptureStats>>> results(members.size());

  std::vector<std::thread> threads;
  for (size_t i = 0; i < members.size(); ++i) {
    threads.emplace_back([&, i] {
      SnapshotMember& m = members[i];
      checkpoint::CaptureOptions copts = options;
      if (i != 0) copts.progress = nullptr;  // one bar: the root's
      auto not_copied = not_copied_by_fork(m.pid, m.smaps);
      Result<checkpoint::CaptureStats> got = not_copied ? Result<checkpoint::CaptureStats>(checkpoint::CaptureStats{})
                                                        : Result<checkpoint::CaptureStats>(std::move(not_copied).error());
      if (not_copied) {
        copts.not_copied_by_fork = std::move(*not_copied);
        copts.copy_from_fork = [&, i](bool fork) -> Result<pid_t> {
          CopyRequest req{i, fork};
          std::unique_lock lock(mu);
          pending.push_back(&req);
          cv.notify_all();
          cv.wait(lock, [&] { return req.served; });
          return std::move(req.answer);
        };
        got = checkpoint::capture_memory(m.pid, *m.writer, m.parent, copts);
      }
      std::lock_guard lock(mu);
      results[i] = std::move(got);
      ++finished;
      settle(i);
      cv.notify_all();
    });
  }

  // Serve the copies; the tree runs on once every member is ready or done.
  TreeSnapshotTimes times;
  bool running = false;
  {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] {
        return !pending.empty() || (!running && settled_count == members.size()) || finished == members.size();
      });
      while (!pending.empty()) {
        CopyRequest* req = pending.front();
        pending.pop_front();
        if (req->fork) {
          auto made = ForkedCopy::make(*members[req->member].frozen);
          if (made) {
            req->answer = made->pid();
            members[req->member].copy.emplace(std::move(made).value());
          } else {
            req->answer = std::move(made).error();
          }
        } else {
          req->answer = pid_t{0};
        }
        req->served = true;
        settle(req->member);
        cv.notify_all();
      }
      if (!running && settled_count == members.size()) {
        lock.unlock();
        let_run();
        times.resumed = std::chrono::steady_clock::now();
        running = true;
        lock.lock();
      }
      if (finished == members.size()) break;
    }
  }
  for (auto& t : threads) t.join();
  if (!running) {
    let_run();
    times.resumed = std::chrono::steady_clock::now();
  }
  for (size_t i = 0; i < members.size(); ++i) {
    if (!*results[i]) {
      log::debug("snapshot of tree member {} failed: {}", members[i].pid, results[i]->error().message());
      return std::move(*results[i]).error();
    }
    members[i].capture = std::move(*results[i]).value();
  }
  return times;
}

}  // namespace wpckpt::dump
