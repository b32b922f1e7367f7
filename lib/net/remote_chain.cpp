#include "lib/net/remote_chain.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "dump-format/digest.hpp"
#include "lib/base/log.hpp"
#include "dump-format/manifest.hpp"
#include "lib/net/page_protocol.hpp"
#include "lib/net/secret_file.hpp"

namespace wpckpt::net {

namespace fs = std::filesystem;

namespace {

constexpr int kConnectTimeoutMs = 10'000;
// A server that answers no read for this long is gone: the lazy restore
// then fails (and kills its process) rather than waiting forever.
constexpr int kReadTimeoutMs = 60'000;
constexpr size_t kMaxImages = 100000;

Error protocol_error(const std::string& peer, const std::string& what) {
  return make_error(EPROTO, "page server protocol", peer + ": " + what);
}

// A path the server names must stay inside the mirror: relative, no "..",
// no hidden or empty components.
bool safe_relative(const std::string& text) {
  fs::path p(text);
  if (text.empty() || p.is_absolute() || p.lexically_normal() != p) return false;
  for (const auto& part : p) {
    std::string s = part.string();
    if (s.empty() || s.front() == '.') return false;
  }
  return true;
}

struct ImageEntry {
  std::string path;
  size_t files = 0;
};

Result<std::vector<ImageEntry>> parse_ready(const nlohmann::json& ready, const std::string& peer) {
  auto images = ready.find("images");
  if (images == ready.end() || !images->is_array() || images->empty() || images->size() > kMaxImages)
    return protocol_error(peer, "a chain without images");
  std::vector<ImageEntry> out;
  for (const auto& img : *images) {
    if (!img.is_object()) return protocol_error(peer, "an image that is not an object");
    auto path = img.find("path"), files = img.find("files");
    if (path == img.end() || !path->is_string() || !safe_relative(path->get<std::string>()))
      return protocol_error(peer, "an image path that leaves the chain's directory");
    if (files == img.end() || !files->is_number_unsigned() || files->get<uint64_t>() < 2 ||
        files->get<uint64_t>() > 4096)
      return protocol_error(peer, "an image without its file count");
    out.push_back({path->get<std::string>(), files->get<size_t>()});
  }
  return out;
}

Result<void> make_private_dirs(const fs::path& root, const std::string& rel) {
  fs::path cur = root;
  for (const auto& part : fs::path(rel)) {
    cur /= part;
    if (::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) return errno_error("mkdir", cur.string());
  }
  return ok();
}

Result<void> write_private_file(const fs::path& path, std::span<const std::byte> bytes) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return errno_error("create", path.string());
  while (!bytes.empty()) {
    ssize_t n = ::write(fd.get(), bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error("write", path.string());
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return ok();
}

}  // namespace

// The page data of the chain, read over connections of the reading process:
// up to kConnections at once, more than the chain reader's workers, so that
// a fault's read never waits behind the background pass's (the pager's
// urgent reads and the chain reader's worker threads each take an idle
// connection, or open one).
class RemotePages final : public image::RemoteData {
 public:
  static constexpr size_t kConnections = 6;

  RemotePages(PageServerTarget target, std::vector<uint8_t> secret, std::string name, std::string digest,
              std::map<std::string, uint32_t> images, SecureChannel first)
      : target_(std::move(target)),
        secret_(std::move(secret)),
        name_(std::move(name)),
        digest_(std::move(digest)),
        images_(std::move(images)),
        pid_(::getpid()) {
    first.set_receive_timeout(kReadTimeoutMs);
    idle_.push_back(std::make_unique<SecureChannel>(std::move(first)));
    open_ = 1;
  }
  ~RemotePages() override { forget_inherited(); }

  Result<void> read(const fs::path& dir, uint64_t offset, std::span<std::byte> out) const override {
    auto it = images_.find(dir.lexically_normal().string());
    if (it == images_.end()) return make_error(EINVAL, "read remote image", dir.string() + ": not part of the chain");
    WPCKPT_TRY_ASSIGN(std::unique_ptr<SecureChannel> c, take());
    Result<void> r = read_on(*c, it->second, offset, out);
    // A connection that failed mid-message is out of step: it is not reused.
    give_back(r ? std::move(c) : nullptr);
    return r;
  }

  void done() const {
    auto c = take();
    if (!c) return;
    log::debug("remote chain: done, told {} (pid {})", (*c)->peer(), ::getpid());
    (void)(*c)->send(kDone, {});
    give_back(std::move(*c));
  }

 private:
  static Result<void> read_on(SecureChannel& c, uint32_t image, uint64_t offset, std::span<std::byte> out) {
    WPCKPT_TRY(c.send(kRead, encode_read({image, offset, out.size()})));
    WPCKPT_TRY_ASSIGN(Message m, c.receive(out.size()));
    if (m.type == kFailed) return expect_json(m, kData, c.peer()).error();
    if (m.type != kData || m.payload.size() != out.size())
      return protocol_error(c.peer(), "an answer that is not the page data asked for");
    std::memcpy(out.data(), m.payload.data(), out.size());
    return ok();
  }

  // A process forked from the one that opened the connections (the lazy
  // restore's pager) leaves them to it: it never writes a byte on them.
  void forget_inherited() const {
    if (pid_ == ::getpid()) return;
    log::debug("remote chain: pid {} drops {} inherited connections", ::getpid(), idle_.size());
    for (auto& c : idle_) c->abandon();
    idle_.clear();
    open_ = 0;
    pid_ = ::getpid();
  }

  Result<std::unique_ptr<SecureChannel>> take() const {
    std::unique_lock lock(mu_);
    forget_inherited();
    cv_.wait(lock, [&] { return !idle_.empty() || open_ < kConnections; });
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    ++open_;
    lock.unlock();
    Result<SecureChannel> c = connect();
    if (!c) {
      lock.lock();
      --open_;
      cv_.notify_one();
      return std::move(c).error();
    }
    return std::make_unique<SecureChannel>(std::move(c).value());
  }

  void give_back(std::unique_ptr<SecureChannel> c) const {
    std::lock_guard lock(mu_);
    if (c) idle_.push_back(std::move(c));
    else --open_;
    cv_.notify_one();
  }

  // One more connection to the same chain: the server checks it still is.
  Result<SecureChannel> connect() const {
    log::debug("remote chain: pid {} connects", ::getpid());
    WPCKPT_TRY_ASSIGN(SecureChannel c, SecureChannel::connect(target_.server, secret_, kConnectTimeoutMs));
    WPCKPT_TRY(send_json(c, kHello,
                         {{"version", kProtocolVersion},
                          {"op", "fetch"},
                          {"image", name_},
                          {"pages_only", true},
                          {"manifest_digest", digest_}}));
    c.set_receive_timeout(kConnectTimeoutMs);
    WPCKPT_TRY_ASSIGN(Message m, c.receive(16 << 20));
    WPCKPT_TRY_ASSIGN(nlohmann::json ready, expect_json(m, kReady, c.peer()));
    WPCKPT_TRY_ASSIGN(std::vector<ImageEntry> entries, parse_ready(ready, c.peer()));
    if (entries.size() != images_.size()) return protocol_error(c.peer(), "the chain changed length");
    c.set_receive_timeout(kReadTimeoutMs);
    return c;
  }

  const PageServerTarget target_;
  const std::vector<uint8_t> secret_;
  const std::string name_, digest_;
  const std::map<std::string, uint32_t> images_;  // mirror directory -> image number on the server
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable std::vector<std::unique_ptr<SecureChannel>> idle_;
  mutable size_t open_ = 0;  // idle and in use
  mutable pid_t pid_;        // the process the connections belong to
};

Result<RemoteChain> RemoteChain::open(const PageServerTarget& target, const std::string& name) {
  WPCKPT_TRY_ASSIGN(std::vector<uint8_t> secret, load_secret(target.secret_file));
  WPCKPT_TRY_ASSIGN(SecureChannel channel, SecureChannel::connect(target.server, secret, kConnectTimeoutMs));
  WPCKPT_TRY(send_json(channel, kHello,
                       {{"version", kProtocolVersion}, {"op", "fetch"}, {"image", name}, {"pages_only", false}}));
  channel.set_receive_timeout(kReadTimeoutMs);
  WPCKPT_TRY_ASSIGN(Message m, channel.receive(16 << 20));
  WPCKPT_TRY_ASSIGN(nlohmann::json ready, expect_json(m, kReady, channel.peer()));
  WPCKPT_TRY_ASSIGN(std::vector<ImageEntry> entries, parse_ready(ready, channel.peer()));

  RemoteChain out;
  std::string templ = "/tmp/wpckpt-remote-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return errno_error("mkdtemp", templ);
  out.mirror_ = templ;
  out.creator_ = ::getpid();
  std::map<std::string, uint32_t> images;
  std::string newest_digest;
  for (size_t i = 0; i < entries.size(); ++i) {
    const fs::path dir = out.mirror_ / entries[i].path;
    if (!images.emplace(dir.lexically_normal().string(), static_cast<uint32_t>(i)).second)
      return protocol_error(channel.peer(), "an image named twice");
    WPCKPT_TRY(make_private_dirs(out.mirror_, entries[i].path));
    for (size_t k = 0; k < entries[i].files; ++k) {
      WPCKPT_TRY_ASSIGN(Message f, channel.receive(kMaxMessageBytes));
      if (f.type == kFailed) return expect_json(f, kFile, channel.peer()).error();
      if (f.type != kFile) return protocol_error(channel.peer(), "a message where an image file was expected");
      WPCKPT_TRY_ASSIGN(auto named, split_named(f));
      const auto& [full, bytes] = named;
      const std::string prefix = std::to_string(i) + "/";
      std::string file = full.starts_with(prefix) ? full.substr(prefix.size()) : std::string();
      if (file != image::kManifestName && file != image::kIndexName && !image::valid_extra_file_name(file))
        return protocol_error(channel.peer(), "file name " + full + " refused");
      if (i == 0 && file == image::kManifestName) newest_digest = image::digest_bytes(bytes).hex();
      WPCKPT_TRY(write_private_file(dir / file, bytes));
    }
  }
  if (newest_digest.empty()) return protocol_error(channel.peer(), "no manifest for the newest image");
  out.pages_ = std::make_shared<RemotePages>(target, std::move(secret), name, newest_digest, std::move(images),
                                             std::move(channel));
  image::OpenOptions options;
  options.remote_data = out.pages_;
  WPCKPT_TRY_ASSIGN(out.chain_, image::ImageChain::open(out.mirror_ / entries[0].path, options));
  return out;
}

RemoteChain::RemoteChain(RemoteChain&& other) noexcept
    : mirror_(std::exchange(other.mirror_, {})),
      creator_(other.creator_),
      pages_(std::move(other.pages_)),
      chain_(std::move(other.chain_)) {}

RemoteChain::~RemoteChain() {
  chain_.reset();
  if (mirror_.empty() || creator_ != ::getpid()) return;
  std::error_code ec;
  fs::remove_all(mirror_, ec);
}

void RemoteChain::done() const {
  if (pages_) pages_->done();
}

}  // namespace wpckpt::net
