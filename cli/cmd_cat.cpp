// wpckpt cat: the raw bytes of [ADDR, ADDR+LEN) as of an image, resolved
// through its chain (zero pages as zeros). A range the image does not cover
// is an error, reported before anything is printed.
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "cli/tree_images.hpp"
#include "dump-format/image.hpp"

namespace wpckpt::cli {
namespace {

using image::kPageSize;
// Hex in a JSON string takes twice the bytes; beyond this raw output is the tool.
constexpr uint64_t kMaxJsonBytes = 16ull << 20;

struct CatOptions {
  bool json = false;
  std::string images_dir, addr;
  uint64_t len = 0;
  int pid = 0;
};

bool parse_address(const std::string& text, uint64_t& out) {
  bool is_hex = text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
  const std::string digits = is_hex ? text.substr(2) : text;
  if (digits.empty() || digits.size() > (is_hex ? 16u : 20u)) return false;
  if (digits.find_first_not_of(is_hex ? "0123456789abcdefABCDEF" : "0123456789") != std::string::npos) return false;
  errno = 0;
  out = std::strtoull(digits.c_str(), nullptr, is_hex ? 16 : 10);
  return errno == 0;
}

int cat(const CatOptions& opts) {
  uint64_t addr = 0;
  if (!parse_address(opts.addr, addr)) return report_usage("--addr '" + opts.addr + "' is not a hex (0x...) or decimal address", opts.json);
  if (opts.len > UINT64_MAX - addr) return report_usage("--addr + --len wraps around the address space", opts.json);
  if (opts.json && opts.len > kMaxJsonBytes)
    return report_usage("--json prints at most " + std::to_string(kMaxJsonBytes) + " bytes; use raw output for more", opts.json);
  auto which = process_image(opts.images_dir, opts.pid);
  if (!which) return report_error(which.error(), opts.json);
  auto opened = image::ImageChain::open(which->dir);
  if (!opened) return report_error(opened.error(), opts.json);
  const image::ImageChain& chain = **opened;
  // Coverage first, so that a failing range prints nothing.
  for (uint64_t page = addr - addr % kPageSize; page < addr + opts.len; page += kPageSize) {
    if (chain.source(page).kind == image::PageSource::NotCovered) {
      std::vector<std::byte> probe(1);
      auto r = chain.read(std::max(page, addr), probe);
      return report_error(r ? make_error(EFAULT, "read image", "address not covered") : r.error(), opts.json);
    }
  }
  if (opts.json) {
    std::vector<std::byte> bytes(opts.len);
    auto r = chain.read(addr, bytes);
    if (!r) return report_error(r.error(), opts.json);
    static const char* digits = "0123456789abcdef";
    std::string hex;
    hex.reserve(bytes.size() * 2);
    for (std::byte b : bytes) {
      hex += digits[static_cast<uint8_t>(b) >> 4];
      hex += digits[static_cast<uint8_t>(b) & 15];
    }
    char start[24];
    std::snprintf(start, sizeof start, "0x%llx", static_cast<unsigned long long>(addr));
    print_json({{"ok", true}, {"addr", start}, {"len", opts.len}, {"hex", hex}});
    return kExitOk;
  }
  // Raw bytes to stdout in 1 MiB pieces: memory stays small for any length.
  std::vector<std::byte> buf(1 << 20);
  for (uint64_t done = 0; done < opts.len;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), opts.len - done));
    auto r = chain.read(addr + done, std::span(buf).first(n));
    if (!r) return report_error(r.error(), opts.json);
    for (size_t off = 0; off < n;) {
      ssize_t w = ::write(STDOUT_FILENO, buf.data() + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return report_error(errno_error("write", "standard output"), opts.json);
      off += static_cast<size_t>(w);
    }
    done += n;
  }
  return kExitOk;
}

}  // namespace

void add_cat_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<CatOptions>();
  CLI::App* sub = app.add_subcommand("cat", "Print the bytes of an address range as of an image");
  sub->add_option("-D,--images-dir", opts->images_dir, "Image directory")->required();
  sub->add_option("--addr", opts->addr, "Start address (hex with 0x, or decimal)")->required();
  sub->add_option("--len", opts->len, "Number of bytes")->required();
  sub->add_option("--pid", opts->pid, "The process of a tree's image (default: its root)");
  sub->add_flag("--json", opts->json, "Print a JSON document (bytes as hex)");
  sub->callback([opts, &exit_code] { exit_code = cat(*opts); });
}

}  // namespace wpckpt::cli
