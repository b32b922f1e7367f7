#include "lib/net/remote_sink.hpp"

#include "lib/net/page_protocol.hpp"
#include "lib/net/secret_file.hpp"

namespace wpckpt::net {

namespace {

constexpr int kConnectTimeoutMs = 10'000;
// A commit includes the server's check of every frame: minutes for a large image.
constexpr int kCommitTimeoutMs = 600'000;

class RemoteSink final : public image::ImageSink {
 public:
  RemoteSink(SecureChannel channel, std::string where) : channel_(std::move(channel)), where_(std::move(where)) {}

  Result<void> append(const std::string& name, std::span<const std::byte> bytes) override {
    return with_reason(send_named(channel_, kAppend, name, bytes));
  }
  Result<void> write_file(const std::string& name, std::span<const std::byte> bytes) override {
    return with_reason(send_named(channel_, kFile, name, bytes));
  }
  Result<void> commit() override {
    WPCKPT_TRY(channel_.send(kCommit, {}));
    channel_.set_receive_timeout(kCommitTimeoutMs);
    WPCKPT_TRY_ASSIGN(Message m, channel_.receive(1 << 20));
    WPCKPT_TRY(expect_json(m, kCommitted, channel_.peer()));
    return ok();
  }
  std::string where() const override { return where_; }

 private:
  // A send fails when the server gave up on the image: its Failed message,
  // if it sent one, says why better than a broken connection does.
  Result<void> with_reason(Result<void> sent) {
    if (sent) return sent;
    channel_.set_receive_timeout(2000);
    if (auto m = channel_.receive(1 << 20); m && m->type == kFailed) {
      auto reason = expect_json(*m, kCommitted, channel_.peer());
      if (!reason) return std::move(reason).error();
    }
    return sent;
  }

  SecureChannel channel_;
  std::string where_;
};

}  // namespace

Result<RemoteImage> open_remote_image(const PageServerTarget& target, const std::filesystem::path& images_dir,
                                      image::ImageKind kind, const std::optional<std::string>& parent) {
  std::string name = (images_dir.has_filename() ? images_dir : images_dir.parent_path()).filename().string();
  WPCKPT_TRY_ASSIGN(std::vector<uint8_t> secret, load_secret(target.secret_file));
  WPCKPT_TRY_ASSIGN(SecureChannel channel, SecureChannel::connect(target.server, secret, kConnectTimeoutMs));
  WPCKPT_TRY(send_json(channel, kHello,
                       {{"version", kProtocolVersion},
                        {"image", name},
                        {"kind", image::kind_name(kind)},
                        {"parent", parent ? nlohmann::json(*parent) : nlohmann::json(nullptr)}}));
  channel.set_receive_timeout(kConnectTimeoutMs);
  WPCKPT_TRY_ASSIGN(Message m, channel.receive(16 << 20));
  WPCKPT_TRY_ASSIGN(nlohmann::json ready, expect_json(m, kReady, channel.peer()));
  RemoteImage out;
  if (parent) {
    auto p = ready.find("parent");
    if (p == ready.end() || !p->is_object())
      return make_error(EPROTO, "page server protocol", channel.peer() + ": no parent in its answer");
    auto rel = p->find("relative_path"), digest = p->find("manifest_digest"), meta = p->find("metadata");
    if (rel == p->end() || !rel->is_string() || digest == p->end() || !digest->is_string())
      return make_error(EPROTO, "page server protocol", channel.peer() + ": a parent without its path or digest");
    out.parent = image::ParentLink{rel->get<std::string>(), digest->get<std::string>()};
    if (meta != p->end() && meta->is_object()) out.parent->metadata = *meta;
  }
  std::string where = channel.peer() + ":" + name;
  out.sink = std::make_unique<RemoteSink>(std::move(channel), where);
  return out;
}

}  // namespace wpckpt::net
