// The page server against real clients over real TCP (loopback) and TLS:
// an image written through the network reads back page for page; a client
// without the secret, a corrupted frame, a parent link the server did not
// resolve, or a parent outside its directory are refused, and nothing of a
// refused image is left on the server.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <string>

#include "dump-format/image.hpp"
#include "lib/net/page_server.hpp"
#include "lib/net/remote_sink.hpp"
#include "lib/net/secret_file.hpp"
#include "tests/support/test_support.hpp"

namespace wpckpt::net {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kBase = 0x7f0000000000;
constexpr uint64_t kPages = 300;  // more than one batch of frames

std::vector<std::byte> page_of(uint64_t addr, int generation) {
  std::vector<std::byte> page(image::kPageSize);
  for (size_t i = 0; i < page.size(); i += 8) {
    uint64_t v = (addr + i) * 2654435761u + static_cast<uint64_t>(generation);
    std::memcpy(page.data() + i, &v, 8);
  }
  return page;
}

// A sink that passes everything on, but flips one byte of the page data
// stream after `flip_at` bytes: a sender with the secret but bad data.
class CorruptingSink final : public image::ImageSink {
 public:
  CorruptingSink(std::unique_ptr<image::ImageSink> inner, uint64_t flip_at) : inner_(std::move(inner)), flip_at_(flip_at) {}
  Result<void> append(const std::string& name, std::span<const std::byte> bytes) override {
    std::vector<std::byte> copy(bytes.begin(), bytes.end());
    if (seen_ <= flip_at_ && flip_at_ < seen_ + copy.size()) copy[flip_at_ - seen_] ^= std::byte{0x40};
    seen_ += copy.size();
    return inner_->append(name, copy);
  }
  Result<void> write_file(const std::string& name, std::span<const std::byte> bytes) override {
    return inner_->write_file(name, bytes);
  }
  Result<void> commit() override { return inner_->commit(); }
  std::string where() const override { return inner_->where(); }

 private:
  std::unique_ptr<image::ImageSink> inner_;
  uint64_t flip_at_, seen_ = 0;
};

class PageServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(create_secret(secret_));
    auto server = PageServer::open(root_, Endpoint{"127.0.0.1", 0}, secret_);
    ASSERT_TRUE(server) << server.error().message();
    server_.emplace(std::move(server).value());
    target_.server = Endpoint{"127.0.0.1", server_->port()};
    target_.secret_file = secret_;
  }
  void TearDown() override {
    if (pending_.valid()) pending_.wait();
  }

  // The server takes one connection in the background.
  void serve_one() {
    pending_ = std::async(std::launch::async, [this] { return server_->receive_one(); });
  }
  Result<ReceivedImage> served() {
    auto r = pending_.get();
    if (!r) return std::move(r).error();
    if (!r->image) return make_error(EPROTO, "test", "the connection brought no image");
    return *r->image;
  }

  // Writes an image of kPages pages of `generation` (every other page when a
  // delta) through `sink`.
  static Result<image::CommitInfo> write_image(std::unique_ptr<image::ImageSink> sink, image::ImageKind kind,
                                               const std::optional<image::ParentLink>& parent, int generation) {
    WPCKPT_TRY_ASSIGN(auto writer, image::ImageWriter::create(std::move(sink), kind, parent, {}));
    image::MemoryArea a;
    a.start = kBase;
    a.end = kBase + kPages * image::kPageSize;
    a.prot = "rw-p";
    a.backing = "anon";
    writer->set_areas({a});
    writer->set_metadata("tracking", {{"generation", generation}});
    std::string state = "{\"generation\": " + std::to_string(generation) + "}";
    WPCKPT_TRY(writer->add_file("process.json", std::as_bytes(std::span(state))));
    for (uint64_t p = 0; p < kPages; p += generation == 0 ? 1 : 2) {
      uint64_t addr = kBase + p * image::kPageSize;
      WPCKPT_TRY(writer->add_pages(addr, page_of(addr, generation)));
    }
    return writer->commit();
  }

  bool nothing_but(std::initializer_list<std::string> names) {
    std::set<std::string> want(names), have;
    for (const auto& e : fs::directory_iterator(root_)) have.insert(e.path().filename().string());
    return want == have;
  }

  test::TempDir dir_;
  fs::path root_ = dir_ / "received", secret_ = dir_ / "secret";
  std::optional<PageServer> server_;
  PageServerTarget target_;
  std::future<Result<Incoming>> pending_;
};

TEST_F(PageServerTest, AChainSentOverTheNetworkReadsBackPageForPage) {
  serve_one();
  auto first = open_remote_image(target_, "/nowhere/1", image::ImageKind::PreDump, std::nullopt);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_FALSE(first->parent);
  auto c1 = write_image(std::move(first->sink), image::ImageKind::PreDump, std::nullopt, 0);
  ASSERT_TRUE(c1) << c1.error().message();
  auto got1 = served();
  ASSERT_TRUE(got1) << got1.error().message();
  EXPECT_EQ(got1->dir, fs::canonical(root_) / "1");
  EXPECT_EQ(got1->kind, "pre-dump");

  serve_one();
  auto second = open_remote_image(target_, "imgs/2", image::ImageKind::Dump, "../1");
  ASSERT_TRUE(second) << second.error().message();
  ASSERT_TRUE(second->parent);
  EXPECT_EQ(second->parent->relative_path, "../1");
  EXPECT_EQ(second->parent->metadata["tracking"]["generation"], 0);  // the parent's metadata, read by the server
  auto c2 = write_image(std::move(second->sink), image::ImageKind::Dump, second->parent, 1);
  ASSERT_TRUE(c2) << c2.error().message();
  ASSERT_TRUE(served());

  // Nothing was written on the sending side; the chain on the server is whole.
  EXPECT_FALSE(fs::exists("/nowhere"));
  EXPECT_FALSE(fs::exists("imgs"));
  struct stat st {};
  ASSERT_EQ(::stat((root_ / "2").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto chain = image::ImageChain::open(root_ / "2");
  ASSERT_TRUE(chain) << chain.error().message();
  EXPECT_EQ((*chain)->dirs().size(), 2u);
  std::vector<std::byte> buf(image::kPageSize);
  for (uint64_t p = 0; p < kPages; ++p) {
    uint64_t addr = kBase + p * image::kPageSize;
    ASSERT_TRUE((*chain)->read(addr, buf));
    ASSERT_EQ(buf, page_of(addr, p % 2 == 0 ? 1 : 0)) << "page " << p;
  }
  auto file = (*chain)->read_file("process.json");
  ASSERT_TRUE(file);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(file->data()), file->size()), "{\"generation\": 1}");
}

TEST_F(PageServerTest, AClientWithAnotherSecretIsRefusedBeforeAnyByte) {
  serve_one();
  PageServerTarget wrong = target_;
  wrong.secret_file = dir_ / "other-secret";
  ASSERT_TRUE(create_secret(wrong.secret_file));
  auto opened = open_remote_image(wrong, "1", image::ImageKind::PreDump, std::nullopt);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().err, EACCES);
  EXPECT_NE(opened.error().hint.find("same --secret-file"), std::string::npos) << opened.error().hint;
  auto got = served();
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("authenticate"), std::string::npos) << got.error().message();
  EXPECT_TRUE(nothing_but({}));
}

TEST_F(PageServerTest, ACorruptedFrameIsRefusedAndNothingIsKept) {
  serve_one();
  auto opened = open_remote_image(target_, "1", image::ImageKind::PreDump, std::nullopt);
  ASSERT_TRUE(opened) << opened.error().message();
  auto sink = std::make_unique<CorruptingSink>(std::move(opened->sink), 5000);  // inside the first frame
  auto c = write_image(std::move(sink), image::ImageKind::PreDump, std::nullopt, 0);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("on 127.0.0.1"), std::string::npos) << c.error().message();  // the server's reason
  auto got = served();
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("checksum"), std::string::npos) << got.error().message();
  EXPECT_TRUE(nothing_but({})) << "a refused image leaves nothing, not even its hidden sibling";
}

TEST_F(PageServerTest, AParentLinkTheServerDidNotResolveIsRefused) {
  serve_one();
  auto first = open_remote_image(target_, "1", image::ImageKind::PreDump, std::nullopt);
  ASSERT_TRUE(first);
  ASSERT_TRUE(write_image(std::move(first->sink), image::ImageKind::PreDump, std::nullopt, 0));
  ASSERT_TRUE(served());
  serve_one();
  auto other = open_remote_image(target_, "other", image::ImageKind::PreDump, std::nullopt);
  ASSERT_TRUE(other);
  ASSERT_TRUE(write_image(std::move(other->sink), image::ImageKind::PreDump, std::nullopt, 0));
  ASSERT_TRUE(served());

  // Announced with parent ../1, written linking to ../other (a valid image too).
  serve_one();
  auto second = open_remote_image(target_, "2", image::ImageKind::Dump, "../1");
  ASSERT_TRUE(second);
  auto lie = image::link_to_parent(root_ / "2", root_ / "other");  // path and digest both right for "other"
  ASSERT_TRUE(lie);
  EXPECT_EQ(lie->relative_path, "../other");
  auto c = write_image(std::move(second->sink), image::ImageKind::Dump, *lie, 1);
  ASSERT_FALSE(c);
  auto got = served();
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("parent link"), std::string::npos) << got.error().message();
  EXPECT_TRUE(nothing_but({"1", "other"}));
}

TEST_F(PageServerTest, ParentsOutsideItsDirectoryAndBadNamesAreRefused) {
  for (auto [name, parent] : std::vector<std::pair<std::string, std::optional<std::string>>>{
           {"2", "../../etc"}, {"2", "/tmp"}, {".hidden", std::nullopt}}) {
    serve_one();
    auto opened = open_remote_image(target_, name, image::ImageKind::PreDump, parent);
    EXPECT_FALSE(opened) << name << " " << parent.value_or("");
    EXPECT_FALSE(served());
  }
  EXPECT_TRUE(nothing_but({}));
}

TEST_F(PageServerTest, ARestoreRequestIsRefusedWithoutRestoreAndForAPreDump) {
  serve_one();
  auto first = open_remote_image(target_, "1", image::ImageKind::PreDump, std::nullopt);
  ASSERT_TRUE(first);
  ASSERT_TRUE(write_image(std::move(first->sink), image::ImageKind::PreDump, std::nullopt, 0));
  ASSERT_TRUE(served());

  // This server was opened without allow_restore.
  pending_ = std::async(std::launch::async, [this] { return server_->receive_one(); });
  auto asked = request_restore(target_.server, secret_, "1");
  ASSERT_FALSE(asked);
  EXPECT_EQ(asked.error().err, EPERM);
  EXPECT_NE(asked.error().hint.find("--restore"), std::string::npos) << asked.error().hint;
  EXPECT_FALSE(pending_.get());

  // One that allows restores still refuses a pre-dump, and a name it does not hold.
  auto allowing = PageServer::open(dir_ / "other-root", Endpoint{"127.0.0.1", 0}, secret_, true);
  ASSERT_TRUE(allowing);
  fs::copy(root_ / "1", dir_ / "other-root" / "1");
  for (const char* name : {"1", "2"}) {
    auto served_one = std::async(std::launch::async, [&] { return allowing->receive_one(); });
    auto r = request_restore(Endpoint{"127.0.0.1", allowing->port()}, secret_, name);
    EXPECT_FALSE(r) << name;
    EXPECT_FALSE(served_one.get()) << name;
  }
}

TEST(SecretFile, OnlyAPrivateFileOfTheRightSizeIsASecret) {
  test::TempDir dir;
  fs::path good = dir / "secret";
  ASSERT_TRUE(create_secret(good));
  auto s = load_secret(good);
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->size(), 64u);  // 32 random bytes, hex, the newline not included
  EXPECT_FALSE(create_secret(good));  // never overwritten

  ASSERT_EQ(::chmod(good.c_str(), 0640), 0);
  auto shared = load_secret(good);
  ASSERT_FALSE(shared);
  EXPECT_NE(shared.error().hint.find("chmod 600"), std::string::npos);

  fs::path shorty = dir / "short";
  {
    std::ofstream(shorty) << "abc\n";
  }
  ASSERT_EQ(::chmod(shorty.c_str(), 0600), 0);
  EXPECT_FALSE(load_secret(shorty));
  fs::path link = dir / "link";
  fs::create_symlink(good, link);
  EXPECT_FALSE(load_secret(link));
  EXPECT_FALSE(load_secret(dir / "missing"));
}

}  // namespace
}  // namespace wpckpt::net
