#include "cli/image_io_options.hpp"

namespace wpckpt::cli {

void add_image_io_options(CLI::App* verb, bool& buffered_io) {
  auto* direct = verb->add_flag("--direct-io")->description(
      "The default: write the image's bulk around the page cache (O_DIRECT): less CPU, "
      "no other program's cache evicted; a restore reads the image from the disk");
  verb->add_flag("--buffered-io", buffered_io,
                 "Write the image through the page cache, for a restore that follows at once on a host whose disk "
                 "is much slower than its memory (costs a fresh page-cache page per 4 KiB written)")
      ->excludes(direct);
}

}  // namespace wpckpt::cli
