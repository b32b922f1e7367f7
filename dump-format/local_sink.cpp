// The local image sink: files inside a locked hidden sibling of the image
// directory (temp_dirs.hpp), renamed into place at commit.
#include <fcntl.h>
#include <unistd.h>

#include <map>

#include "dump-format/background_sync.hpp"
#include "dump-format/chain_reader.hpp"
#include "dump-format/direct_stream.hpp"
#include "dump-format/file_io.hpp"
#include "dump-format/image_sink.hpp"
#include "dump-format/temp_dirs.hpp"
#include "lib/base/log.hpp"

namespace wpckpt::image {

namespace fs = std::filesystem;

namespace {

// Start writeback every so often, and make what was written durable every
// kSyncEvery bytes on a thread of its own (background_sync.hpp), so that
// commit()'s fsync has little left. Small steps: a write issued while the device
// flushes waits for the flush (here 35-40 ms for 64 MiB, and every direct
// write behind it stalled as long), and a stall longer than the writer's
// window of batches (~5 ms of compression) idles every compressor. At
// 64 MiB a 1 GiB full pre-dump had both CPUs idle for ~20 ms every 190 ms;
// at 16 MiB no dip was left and it took 1.01 s instead of 1.13 (median of
// 4, fresh targets, alternating).
constexpr uint64_t kWritebackEvery = 8ull << 20;
constexpr uint64_t kSyncEvery = 16ull << 20;
// With direct_io, a stream goes on with O_DIRECT (direct_stream.hpp) past
// this much, from the next aligned offset: a small delta never pays for
// staging buffers.
constexpr uint64_t kDirectAfter = 8ull << 20;

class LocalSink final : public ImageSink {
 public:
  LocalSink(fs::path dir, fs::path tmp, UniqueFd tmp_lock, TargetState target, StagedCheck check, bool direct_io)
      : dir_(std::move(dir)),
        tmp_(std::move(tmp)),
        tmp_lock_(std::move(tmp_lock)),
        target_(target),
        check_(std::move(check)),
        direct_possible_(direct_io) {}
  ~LocalSink() override {
    (void)sync_.finish();  // before the descriptors close
    streams_.clear();
    if (!committed_) remove_tree(tmp_);
    // tmp_lock_ is released last: until then no cleaner touches tmp_.
  }

  Result<void> append(const std::string& name, std::span<const std::byte> bytes) override {
    auto it = streams_.find(name);
    if (it == streams_.end()) {
      WPCKPT_TRY_ASSIGN(UniqueFd fd, create_private_file(tmp_ / name));
      it = streams_.emplace(name, Stream{std::move(fd)}).first;
    }
    Stream& s = it->second;
    if (s.direct) {
      WPCKPT_TRY(s.direct->append(bytes));
      s.size += bytes.size();
      ask_durable(s, name);
      return ok();
    }
    const uint64_t from = (std::max(s.size, kDirectAfter) + DirectStream::kAlign - 1) / DirectStream::kAlign *
                          DirectStream::kAlign;
    if (direct_possible_ && from < s.size + bytes.size()) {
      // Through the page cache up to an aligned offset, O_DIRECT from there.
      const auto head = bytes.first(static_cast<size_t>(from - s.size));
      WPCKPT_TRY(append_buffered(s, name, head));
      bytes = bytes.subspan(head.size());
      auto direct = DirectStream::open(tmp_ / name, from);
      if (direct) {
        s.direct = std::move(direct).value();
        WPCKPT_TRY(s.direct->append(bytes));
        s.size += bytes.size();
        ask_durable(s, name);
        return ok();
      }
      // The file system refuses it: the page cache, as for a small image.
      log::debug("{}: written through the page cache: {}", (tmp_ / name).string(), direct.error().message());
      direct_possible_ = false;
    }
    return append_buffered(s, name, bytes);
  }

  Result<void> end_stream(const std::string& name) override {
    auto it = streams_.find(name);
    if (it == streams_.end()) return ok();
    WPCKPT_TRY(finish_direct(it->second, name));
    start_writeback(it->second);
    return ok();
  }

  // Written now, made durable at commit with the rest: writeback starts at
  // once, and on a journaling file system the first fsync of commit() then
  // carries every file in one journal commit instead of one commit per file
  // (1.3 ms of a 10 ms final dump's freeze here).
  Result<void> write_file(const std::string& name, std::span<const std::byte> bytes) override {
    if (streams_.count(name)) return make_error(EEXIST, "write", (tmp_ / name).string());
    WPCKPT_TRY(append(name, bytes));
    start_writeback(streams_.at(name));
    return ok();
  }

  Result<void> commit() override {
    for (auto& [name, s] : streams_) WPCKPT_TRY(finish_direct(s, name));
    WPCKPT_TRY(sync_.finish());
    // Writeback of every stream first, so that no fsync waits for the next.
    for (auto& [name, s] : streams_) start_writeback(s);
    for (auto& [name, s] : streams_) WPCKPT_TRY(fsync_fd(s.fd.get(), tmp_ / name));
    if (check_) WPCKPT_TRY(check_(tmp_));
    WPCKPT_TRY(commit_directory(tmp_, dir_, target_));
    committed_ = true;
    return ok();
  }

  std::string where() const override { return dir_.string(); }

 private:
  struct Stream {
    UniqueFd fd;
    uint64_t size = 0, synced = 0, durable = 0;  // written; writeback started; fdatasync asked
    std::unique_ptr<DirectStream> direct;        // the rest of a large stream, from direct->offset()
  };

  Result<void> append_buffered(Stream& s, const std::string& name, std::span<const std::byte> bytes) {
    WPCKPT_TRY(write_all(s.fd.get(), bytes, tmp_ / name));
    s.size += bytes.size();
    if (s.size - s.synced >= kWritebackEvery) start_writeback(s);
    ask_durable(s, name);
    return ok();
  }

  // Every kSyncEvery bytes, an fdatasync on the sync thread. Written with
  // O_DIRECT too: the host persists what it was given only on a flush, and
  // a full pre-dump of 1 GiB waited 196 ms in commit() for the flush of all
  // of it. (The direct writes still in flight are covered by the next one,
  // or by commit()'s fsync.)
  void ask_durable(Stream& s, const std::string& name) {
    if (s.size - s.durable < kSyncEvery) return;
    sync_.request(s.fd.get(), tmp_ / name);
    s.durable = s.size;
  }

  // The direct part's last partial block goes through the page cache.
  Result<void> finish_direct(Stream& s, const std::string& name) {
    if (!s.direct) return ok();
    WPCKPT_TRY_ASSIGN(std::span<const std::byte> tail, s.direct->finish());
    const uint64_t at = s.direct->offset();
    WPCKPT_TRY(pwrite_all(s.fd.get(), tail, static_cast<off_t>(at), tmp_ / name));
    s.direct.reset();
    // Its own descriptor still stands where the direct part began.
    if (::lseek(s.fd.get(), static_cast<off_t>(s.size), SEEK_SET) < 0) return errno_error("seek", (tmp_ / name).string());
    return ok();
  }
  static void start_writeback(Stream& s) {
    if (s.size == s.synced) return;
    ::sync_file_range(s.fd.get(), static_cast<off_t>(s.synced), static_cast<off_t>(s.size - s.synced),
                      SYNC_FILE_RANGE_WRITE);
    s.synced = s.size;
  }
  fs::path dir_, tmp_;
  UniqueFd tmp_lock_;  // flock held on tmp_ while this sink lives (temp_dirs.hpp)
  TargetState target_;
  StagedCheck check_;
  std::map<std::string, Stream> streams_;
  BackgroundSync sync_;  // finished by the destructor before the descriptors close
  bool direct_possible_;  // asked for, and not refused by the file system yet
  bool committed_ = false;
};

}  // namespace

Result<std::unique_ptr<ImageSink>> make_local_sink(const fs::path& dir, StagedCheck check, bool direct_io) {
  WPCKPT_TRY_ASSIGN(TargetState target, check_image_target(dir));
  remove_abandoned_temps(dir);
  fs::path tmp;
  UniqueFd tmp_lock;
  for (int attempt = 0;; ++attempt) {
    WPCKPT_TRY_ASSIGN(tmp, make_temp_sibling(dir));
    Result<UniqueFd> lock = lock_temp_dir(tmp);
    if (lock) {
      tmp_lock = std::move(lock).value();
      break;
    }
    // ENOENT: a cleaner took it for abandoned before we locked it.
    if (lock.error().err != ENOENT || attempt == 2) return std::move(lock).error();
  }
  return std::unique_ptr<ImageSink>(std::make_unique<LocalSink>(dir, tmp, std::move(tmp_lock), target, std::move(check), direct_io));
}

Result<ParentLink> link_to_parent(const fs::path& dir, const fs::path& parent) {
  // The parent's manifest must be sound (the rest of the chain is checked by
  // whoever reads it); we link to the digest of the manifest that was checked
  // (not one read again later).
  WPCKPT_TRY_ASSIGN(ResolvedChain chain, ResolvedChain::open(parent, OpenOptions{.newest_manifest_only = true}));
  std::error_code ec;
  fs::path canon_parent = fs::weakly_canonical(parent, ec);
  fs::path canon_dir = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  if (ec) return make_error(ec.value(), "resolve path", dir.string());
  return ParentLink{canon_parent.lexically_relative(canon_dir).string(), chain.newest().manifest_digest.hex(),
                    chain.newest().doc.manifest.metadata};
}

}  // namespace wpckpt::image
