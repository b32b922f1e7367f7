#include "lib/net/page_server.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <mutex>
#include <thread>

#include "dump-format/image.hpp"
#include "dump-format/manifest.hpp"
#include "lib/net/page_protocol.hpp"
#include "lib/net/secret_file.hpp"

namespace wpckpt::net {

namespace fs = std::filesystem;

namespace {

constexpr int kHandshakeTimeoutMs = 10'000;
// A sender stalls while it freezes and scans its process: generous.
constexpr int kMessageTimeoutMs = 120'000;

bool valid_image_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

bool inside(const fs::path& root, const fs::path& p) {
  auto rel = p.lexically_relative(root);
  return !rel.empty() && *rel.begin() != ".." && !rel.is_absolute();
}

Result<void> check_version(const nlohmann::json& hello) {
  auto v = hello.find("version");
  if (v == hello.end() || !v->is_number_integer() || v->get<int>() != kProtocolVersion)
    return make_error(EPROTO, "page server", "protocol version differs").with_hint("use the same wpckpt version on both hosts");
  return ok();
}

Result<void> check_image_name(const nlohmann::json* image) {
  if (!image || !image->is_string() || !valid_image_name(image->get<std::string>()))
    return make_error(EINVAL, "page server", "image name refused (letters, digits, '-', '_', '.'; not starting with '.')");
  return ok();
}

struct Request {
  std::string name, kind;
  std::optional<fs::path> parent;  // resolved on this side
};

Result<Request> parse_hello(const nlohmann::json& hello, const fs::path& root) {
  auto field = [&](const char* key) -> const nlohmann::json* {
    auto it = hello.find(key);
    return it == hello.end() ? nullptr : &*it;
  };
  const nlohmann::json *image = field("image"), *kind = field("kind"), *parent = field("parent");
  WPCKPT_TRY(check_image_name(image));
  if (!kind || !kind->is_string() || (*kind != "pre-dump" && *kind != "dump"))
    return make_error(EINVAL, "page server", "unknown image kind");
  Request r{image->get<std::string>(), kind->get<std::string>(), std::nullopt};
  if (parent && !parent->is_null()) {
    if (!parent->is_string()) return make_error(EINVAL, "page server", "parent is not a path");
    fs::path rel = parent->get<std::string>();
    if (rel.is_absolute())
      return make_error(EINVAL, "page server", "parent " + rel.string() + " is absolute")
          .with_hint("with --page-server, give --prev-images-dir relative to -D (e.g. ../1)");
    std::error_code ec;
    fs::path resolved = fs::weakly_canonical(root / r.name / rel, ec);
    if (ec || !inside(root, resolved))
      return make_error(EINVAL, "page server", "parent " + rel.string() + " is outside the server's directory");
    r.parent = resolved;
  }
  return r;
}

// What the receiver insists on before the rename: every frame and file of
// the new image checks out, and the image links to the parent this server
// resolved (not to one the sender chose).
image::StagedCheck check_received(const Request& req, const std::optional<image::ParentLink>& link) {
  return [req, link](const fs::path& staged) -> Result<void> {
    WPCKPT_TRY(image::verify_chain(staged, {}, 1, false));
    WPCKPT_TRY_ASSIGN(auto chain, image::ImageChain::open(staged));
    const image::Manifest& m = chain->manifest(0);
    if (image::kind_name(m.kind) != req.kind)
      return make_error(EINVAL, "page server", "the image is a " + std::string(image::kind_name(m.kind)) + ", announced as " + req.kind);
    if (m.parent.value_or("") != (link ? link->relative_path : std::string()))
      return make_error(EINVAL, "page server", "the image's parent link differs from the one resolved here");
    return ok();
  };
}

Result<ReceivedImage> receive_image(SecureChannel& channel, const fs::path& root, const nlohmann::json& hello) {
  auto t0 = std::chrono::steady_clock::now();
  WPCKPT_TRY_ASSIGN(Request req, parse_hello(hello, root));
  const fs::path dir = root / req.name;

  std::optional<image::ParentLink> link;
  nlohmann::json parent_doc = nullptr;
  if (req.parent) {
    WPCKPT_TRY_ASSIGN(link, image::link_to_parent(dir, *req.parent));
    parent_doc = {{"relative_path", link->relative_path},
                  {"manifest_digest", link->manifest_digest},
                  {"metadata", link->metadata}};
  }
  WPCKPT_TRY_ASSIGN(auto sink, image::make_local_sink(dir, check_received(req, link)));
  WPCKPT_TRY(send_json(channel, kReady, {{"parent", parent_doc}}));

  ReceivedImage got{dir, req.kind, channel.peer(), 0, 0};
  for (;;) {
    WPCKPT_TRY_ASSIGN(Message m, channel.receive(kMaxMessageBytes));
    if (m.type == kCommit) break;
    if (m.type != kAppend && m.type != kFile)
      return make_error(EPROTO, "page server protocol", channel.peer() + ": unexpected message " + std::to_string(m.type));
    WPCKPT_TRY_ASSIGN(auto named, split_named(m));
    auto& [name, bytes] = named;
    bool known = m.type == kAppend ? name == image::kDataName
                                   : name == image::kIndexName || name == image::kManifestName ||
                                         image::valid_extra_file_name(name);
    if (!known) return make_error(EINVAL, "page server", "file name " + name + " refused");
    got.bytes += bytes.size();
    WPCKPT_TRY(m.type == kAppend ? sink->append(name, bytes) : sink->write_file(name, bytes));
  }
  WPCKPT_TRY(sink->commit());
  got.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WPCKPT_TRY(send_json(channel, kCommitted, {{"dir", dir.string()}, {"bytes", got.bytes}}));
  return got;
}

// A restore request names a dump this server holds.
Result<fs::path> restorable(const nlohmann::json& hello, const fs::path& root, bool allowed) {
  if (!allowed)
    return make_error(EPERM, "page server", "restore requests are not accepted here")
        .with_hint("start the page server with --restore to let a migration restore what it sent");
  auto image = hello.find("image");
  WPCKPT_TRY(check_image_name(image == hello.end() ? nullptr : &*image));
  fs::path dir = root / image->get<std::string>();
  WPCKPT_TRY_ASSIGN(auto chain, image::ImageChain::open(dir));
  if (chain->manifest(0).kind != image::ImageKind::Dump)
    return make_error(EINVAL, "page server", dir.string() + " is a pre-dump").with_hint("restore the dump that ends the chain");
  return dir;
}

}  // namespace

// Fetches that ended, handed from their threads to receive_one().
struct FetchQueue {
  std::mutex mu;
  std::deque<FetchEvent> ended;
  UniqueFd wake{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};

  void push(FetchEvent e) {
    {
      std::lock_guard lock(mu);
      ended.push_back(std::move(e));
    }
    uint64_t one = 1;
    (void)!::write(wake.get(), &one, sizeof one);
  }
  std::optional<FetchEvent> pop() {
    uint64_t n;
    (void)!::read(wake.get(), &n, sizeof n);
    std::lock_guard lock(mu);
    if (ended.empty()) return std::nullopt;
    FetchEvent e = std::move(ended.front());
    ended.pop_front();
    if (!ended.empty()) {
      uint64_t one = 1;
      (void)!::write(wake.get(), &one, sizeof one);
    }
    return e;
  }
};

// Served on a thread of its own (a lazy restore reads for as long as its
// process runs); the thread owns the connection and only reads the chain.
Result<FetchEvent> PageServer::start_fetch(std::shared_ptr<SecureChannel> channel, const nlohmann::json& hello) {
  if (!allow_fetch_)
    return make_error(EPERM, "page server", "restores from this server are not accepted here")
        .with_hint("start the page server with --lazy to serve its images to restores on other hosts");
  FetchEvent started{false, channel->peer(), {}, std::nullopt};
  if (auto image = hello.find("image"); image != hello.end() && image->is_string()) started.served.image = *image;
  std::thread([channel, root = root_, hello, queue = fetches_] {
    FetchEvent end{true, channel->peer(), {}, std::nullopt};
    auto served = serve_chain(*channel, root, hello);
    if (served) {
      end.served = *served;
    } else {
      (void)send_failure(*channel, served.error());
      end.error = served.error();
    }
    queue->push(std::move(end));
  }).detach();
  return started;
}

Result<void> RestoreAsk::running(int pid) {
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - asked_).count();
  return send_json(*channel_, kRestored, {{"pid", pid}, {"seconds", seconds}});
}

void RestoreAsk::failed(const Error& error) { (void)send_failure(*channel_, error); }

Result<RemoteRestore> request_restore(const Endpoint& server, const fs::path& secret_file, const std::string& name) {
  WPCKPT_TRY_ASSIGN(std::vector<uint8_t> secret, load_secret(secret_file));
  WPCKPT_TRY_ASSIGN(SecureChannel channel, SecureChannel::connect(server, secret, kHandshakeTimeoutMs));
  WPCKPT_TRY(send_json(channel, kHello, {{"version", kProtocolVersion}, {"op", "restore"}, {"image", name}}));
  // An eager restore of a large image takes a while.
  channel.set_receive_timeout(600'000);
  WPCKPT_TRY_ASSIGN(Message m, channel.receive(1 << 20));
  WPCKPT_TRY_ASSIGN(nlohmann::json doc, expect_json(m, kRestored, channel.peer()));
  auto pid = doc.find("pid"), seconds = doc.find("seconds");
  if (pid == doc.end() || !pid->is_number_integer() || seconds == doc.end() || !seconds->is_number())
    return make_error(EPROTO, "page server protocol", channel.peer() + ": a restore answer without pid or time");
  return RemoteRestore{pid->get<int>(), seconds->get<double>()};
}

PageServer::PageServer(fs::path root, UniqueFd listener, uint16_t port, std::vector<uint8_t> secret, bool allow_restore,
                       bool allow_fetch)
    : root_(std::move(root)),
      listener_(std::move(listener)),
      port_(port),
      secret_(std::move(secret)),
      allow_restore_(allow_restore),
      allow_fetch_(allow_fetch),
      fetches_(std::make_shared<FetchQueue>()) {}

Result<PageServer> PageServer::open(const fs::path& root_given, const Endpoint& listen, const fs::path& secret_file,
                                    bool allow_restore, bool allow_fetch) {
  std::error_code ec;
  // Images are private: a new root is made 0700 (an existing one is kept as it is).
  if (!fs::exists(root_given, ec) && fs::create_directories(root_given, ec))
    fs::permissions(root_given, fs::perms::owner_all, ec);
  fs::path root = fs::canonical(root_given, ec);
  if (ec || !fs::is_directory(root))
    return make_error(ec ? ec.value() : ENOTDIR, "page server directory", root_given.string());
  WPCKPT_TRY_ASSIGN(std::vector<uint8_t> secret, load_secret(secret_file));
  WPCKPT_TRY_ASSIGN(UniqueFd listener, listen_tcp(listen));
  WPCKPT_TRY_ASSIGN(uint16_t port, local_port(listener.get()));
  return PageServer(root, std::move(listener), port, std::move(secret), allow_restore, allow_fetch);
}

Result<Incoming> PageServer::receive_one() {
  pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {fetches_->wake.get(), POLLIN, 0}};
  while (::poll(fds, 2, -1) < 0) {
    if (errno != EINTR) return errno_error("poll", "page server");
  }
  if (fds[1].revents) {
    if (auto ended = fetches_->pop()) return Incoming{std::nullopt, std::nullopt, std::move(ended)};
    if (!fds[0].revents) return receive_one();
  }
  WPCKPT_TRY_ASSIGN(SecureChannel accepted, SecureChannel::accept(listener_.get(), secret_, kHandshakeTimeoutMs));
  auto channel = std::make_shared<SecureChannel>(std::move(accepted));
  auto got = [&]() -> Result<Incoming> {
    channel->set_receive_timeout(kMessageTimeoutMs);
    WPCKPT_TRY_ASSIGN(Message hello_msg, channel->receive(1 << 20));
    WPCKPT_TRY_ASSIGN(nlohmann::json hello, expect_json(hello_msg, kHello, channel->peer()));
    WPCKPT_TRY(check_version(hello));
    auto op_field = hello.find("op");
    const std::string op = op_field == hello.end() ? "write" : op_field->is_string() ? op_field->get<std::string>() : "";
    if (op == "restore") {
      WPCKPT_TRY_ASSIGN(fs::path dir, restorable(hello, root_, allow_restore_));
      return Incoming{std::nullopt, RestoreAsk(dir, channel), std::nullopt};
    }
    if (op == "fetch") {
      WPCKPT_TRY_ASSIGN(FetchEvent started, start_fetch(channel, hello));
      return Incoming{std::nullopt, std::nullopt, std::move(started)};
    }
    if (op != "write") return make_error(EPROTO, "page server protocol", "unknown request");
    WPCKPT_TRY_ASSIGN(ReceivedImage image, receive_image(*channel, root_, hello));
    return Incoming{image, std::nullopt, std::nullopt};
  }();
  if (!got) (void)send_failure(*channel, got.error());  // best effort: the sender may be gone
  return got;
}

}  // namespace wpckpt::net
