// A chain read from `page-server --lazy` over real TCP (loopback) and TLS
// against the same chain read locally: every page, every run and the
// process state are identical; a forked reader (the lazy restore's pager)
// opens its own connection and reads the same; the server hears Done; a
// corrupted frame on the server and a wrong secret are errors, never data.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "dump-format/image.hpp"
#include "lib/net/page_server.hpp"
#include "lib/net/remote_chain.hpp"
#include "lib/net/secret_file.hpp"
#include "tests/support/test_support.hpp"

namespace wpckpt::net {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kBase = 0x7f0000000000;
constexpr uint64_t kPages = 700;  // several batches of frames

std::vector<std::byte> page_of(uint64_t addr, int generation) {
  std::vector<std::byte> page(image::kPageSize);
  for (size_t i = 0; i < page.size(); i += 8) {
    uint64_t v = (addr + i) * 2654435761u + static_cast<uint64_t>(generation) * 7919u;
    std::memcpy(page.data() + i, &v, 8);
  }
  return page;
}

// Generation 0 stores every page; 1 every third page, as a delta of 0.
Result<void> write_image(const fs::path& dir, const std::optional<fs::path>& parent, int generation) {
  WPCKPT_TRY_ASSIGN(auto writer, image::ImageWriter::create(dir, generation ? image::ImageKind::Dump
                                                                            : image::ImageKind::PreDump,
                                                            parent, {}));
  image::MemoryArea a{kBase, kBase + kPages * image::kPageSize, "rw-p", "anon", "", 0, true, nlohmann::json::object()};
  writer->set_areas({a});
  std::string state = "{\"generation\": " + std::to_string(generation) + "}";
  WPCKPT_TRY(writer->add_file("process.json", std::as_bytes(std::span(state))));
  for (uint64_t p = 0; p < kPages; p += generation == 0 ? 1 : 3) {
    uint64_t addr = kBase + p * image::kPageSize;
    WPCKPT_TRY(writer->add_pages(addr, page_of(addr, generation)));
  }
  WPCKPT_TRY(writer->commit());
  return ok();
}

class RemoteChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(create_secret(secret_));
    fs::create_directories(root_);
    fs::permissions(root_, fs::perms::owner_all);
    ASSERT_TRUE(write_image(root_ / "1", std::nullopt, 0));
    ASSERT_TRUE(write_image(root_ / "2", root_ / "1", 1));
    auto server = PageServer::open(root_, Endpoint{"127.0.0.1", 0}, secret_, false, true);
    ASSERT_TRUE(server) << server.error().message();
    server_ = std::make_shared<PageServer>(std::move(server).value());
    target_.server = Endpoint{"127.0.0.1", server_->port()};
    target_.secret_file = secret_;
    // The server runs on until the test ends; its events are kept.
    std::thread([server = server_, events = events_] {
      for (;;) {
        auto in = server->receive_one();
        std::lock_guard lock(events->mu);
        if (in && in->fetch) events->fetches.push_back(*in->fetch);
        if (!in) events->errors.push_back(in.error().message());
      }
    }).detach();
  }

  bool saw_complete_fetch() {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(events_->mu);
        for (const auto& f : events_->fetches)
          if (f.ended && f.served.complete) return true;
      }
      usleep(10'000);
    }
    return false;
  }

  struct Events {
    std::mutex mu;
    std::vector<FetchEvent> fetches;
    std::vector<std::string> errors;
  };
  test::TempDir dir_;
  fs::path root_ = dir_ / "served", secret_ = dir_ / "secret";
  std::shared_ptr<PageServer> server_;
  std::shared_ptr<Events> events_ = std::make_shared<Events>();
  PageServerTarget target_;
};

TEST_F(RemoteChainTest, ReadsExactlyWhatTheLocalChainReads) {
  auto local = image::ImageChain::open(root_ / "2");
  ASSERT_TRUE(local) << local.error().message();
  auto remote = RemoteChain::open(target_, "2");
  ASSERT_TRUE(remote) << remote.error().message();
  image::ImageChain& r = remote->chain();
  EXPECT_EQ(r.dirs().size(), 2u);
  EXPECT_EQ(r.manifest().kind, image::ImageKind::Dump);
  auto state = r.read_file("process.json");
  ASSERT_TRUE(state) << state.error().message();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(state->data()), state->size()), "{\"generation\": 1}");

  // Single reads, unaligned and across frames and images.
  std::vector<std::byte> a(37 * image::kPageSize + 100), b(a.size());
  for (uint64_t off : {uint64_t{0}, uint64_t{5 * 4096 + 17}, uint64_t{600 * 4096}}) {
    a.resize(std::min<uint64_t>(a.size(), kPages * image::kPageSize - off));
    b.resize(a.size());
    ASSERT_TRUE((*local)->read(kBase + off, a));
    auto got = r.read(kBase + off, b);
    ASSERT_TRUE(got) << got.error().message();
    EXPECT_EQ(a, b) << "at offset " << off;
  }
  // Every run, in the restore's order.
  std::map<uint64_t, std::vector<std::byte>> want, have;
  auto collect = [](std::map<uint64_t, std::vector<std::byte>>& into) {
    return [&into](uint64_t addr, std::span<const std::byte> data, uint64_t zeros) -> Result<void> {
      for (uint64_t p = 0; p < (data.empty() ? zeros : data.size() / image::kPageSize); ++p)
        into[addr + p * image::kPageSize] =
            data.empty() ? std::vector<std::byte>(image::kPageSize)
                         : std::vector<std::byte>(data.begin() + p * image::kPageSize,
                                                  data.begin() + (p + 1) * image::kPageSize);
      return ok();
    };
  };
  ASSERT_TRUE((*local)->for_each_run(collect(want), {}, image::ImageChain::RunOrder::FramesOnce));
  auto streamed = r.for_each_run(collect(have), {}, image::ImageChain::RunOrder::FramesOnce);
  ASSERT_TRUE(streamed) << streamed.error().message();
  EXPECT_EQ(want.size(), kPages);
  EXPECT_TRUE(want == have);
}

TEST_F(RemoteChainTest, AForkedReaderUsesItsOwnConnectionAndTheServerHearsDone) {
  auto remote = RemoteChain::open(target_, "2");
  ASSERT_TRUE(remote) << remote.error().message();
  std::vector<std::byte> parent_read(kPages * image::kPageSize);
  ASSERT_TRUE(remote->chain().read(kBase, parent_read));
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::vector<std::byte> got(kPages * image::kPageSize);
    auto r = remote->chain().read(kBase, got);
    int status = !r ? 2 : got != parent_read ? 3 : 0;
    if (status == 0) remote->done();
    _exit(status);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: the child could not read, 3: it read other bytes";
  // The parent's connection still works after the child's exit.
  std::vector<std::byte> again(parent_read.size());
  auto r = remote->chain().read(kBase, again);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(again, parent_read);
  EXPECT_TRUE(saw_complete_fetch());
}

TEST_F(RemoteChainTest, ACorruptedFrameOnTheServerIsAnErrorNotData) {
  {
    std::fstream f(root_ / "2" / "pages.dat", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
  }
  auto remote = RemoteChain::open(target_, "2");
  ASSERT_TRUE(remote) << remote.error().message();
  std::vector<std::byte> out(kPages * image::kPageSize);
  auto r = remote->chain().read(kBase, out);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("checksum"), std::string::npos) << r.error().message();
}

TEST_F(RemoteChainTest, AnotherSecretOrAnImageOutsideTheServersDirectoryIsRefused) {
  PageServerTarget wrong = target_;
  wrong.secret_file = dir_ / "other";
  ASSERT_TRUE(create_secret(wrong.secret_file));
  auto refused = RemoteChain::open(wrong, "2");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().hint.find("same --secret-file"), std::string::npos) << refused.error().hint;
  for (const char* name : {"..", "../served/2", ".hidden", "missing"}) {
    auto r = RemoteChain::open(target_, name);
    EXPECT_FALSE(r) << name;
  }
}

}  // namespace
}  // namespace wpckpt::net
