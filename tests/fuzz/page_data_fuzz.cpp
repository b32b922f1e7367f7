// libFuzzer target: pages.dat frames. The input describes a data file: byte 0
// the frame size in pages, byte 1 the number of frames (low 3 bits) and the
// pages of the last frame (the rest), then one 16-bit
// compressed size per frame, then the frame bytes. The fuzz target builds the
// matching index (with correct checksums, so zstd itself is reached) and
// reads the frames the way ImageChain does, in batches and one by one.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dump-format/byte_io.hpp"
#include "dump-format/chain_reader.hpp"
#include "dump-format/digest.hpp"
#include "dump-format/frame_codec.hpp"

using namespace wpckpt::image;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint32_t frame_pages = 1 + data[0] % 16;
  const size_t frames = 1 + data[1] % 8;
  const uint32_t last_pages = 1 + (data[1] / 8) % frame_pages;
  if (size < 2 + 2 * frames) return 0;
  const std::byte* payload = reinterpret_cast<const std::byte*>(data) + 2 + 2 * frames;
  size_t left = size - 2 - 2 * frames;

  // The header as given (byte 0 also decides whether it is damaged).
  std::vector<std::byte> file = encode_data_header(frame_pages);
  (void)check_data_header(std::span(reinterpret_cast<const std::byte*>(data), std::min<size_t>(size, kDataHeaderSize)),
                          frame_pages, "pages.dat");

  OpenImage img;
  img.data_path = "pages.dat";
  img.index.frame_pages = frame_pages;
  uint64_t offset = kDataHeaderSize;
  for (size_t i = 0; i < frames; ++i) {
    size_t len = std::min<size_t>(left, 1 + (data[2 + 2 * i] | (data[3 + 2 * i] << 8)));
    if (len == 0) break;
    FrameEntry f{offset, static_cast<uint32_t>(len), frame_pages, checksum64(std::span(payload, len))};
    if (i + 1 == frames) f.raw_pages = last_pages;
    img.index.frames.push_back(f);
    img.index.stored_pages += f.raw_pages;
    file.insert(file.end(), payload, payload + len);
    offset += len;
    payload += len;
    left -= len;
    if (f.raw_pages != frame_pages) break;
  }
  if (img.index.frames.empty()) return 0;
  img.index.extents.push_back(Extent{0x10000, img.index.stored_pages, 0, ExtentKind::Stored});

  auto data_fd = std::make_shared<wpckpt::UniqueFd>(::memfd_create("pages.dat", MFD_CLOEXEC));
  if (!*data_fd || ::write(data_fd->get(), file.data(), file.size()) != static_cast<ssize_t>(file.size())) return 0;
  const DataSource source{data_fd, nullptr};
  FrameDecompressor decompressor;
  std::vector<std::byte> compressed, raw;
  (void)read_frames(img, source, 0, img.index.frames.size(), compressed, raw, decompressor);
  for (uint64_t k = 0; k < img.index.frames.size(); ++k) {
    if (read_frames(img, source, k, 1, compressed, raw, decompressor) && raw.size() != img.index.frames[k].raw_pages * kPageSize)
      __builtin_trap();
  }
  (void)read_frames(img, source, img.index.frames.size(), 1, compressed, raw, decompressor);  // past the end: an error
  return 0;
}
