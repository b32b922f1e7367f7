// Checks made before anything is created: a restore that cannot finish must
// fail here, with nothing to clean up. Each check names what is wrong and
// what the user can do about it.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lib/base/result.hpp"
#include "lib/state/process_state.hpp"

namespace wpckpt::restore {

// XSAVE features this CPU has enabled (XCR0).
uint64_t cpu_xcr0();
// Bytes of this process's [vdso] (the same image every process of this kernel gets).
Result<std::vector<uint8_t>> own_vdso_image();

// The CPU and kernel can run the image: XCR0 superset, identical vdso.
Result<void> check_cpu_and_vdso(const state::ProcessState& state);
// `id` is free, or held by the dead and freed within 10 s (a process the dump
// just killed, a zombie whose new parent has not reaped it yet).
Result<void> check_id_free(int id, bool is_pid);
// The pid and every tid are free; an error names the process that holds one.
Result<void> check_ids_free(const state::ProcessState& state);
// CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (clone3 set_tid, PR_SET_MM exe).
Result<void> check_capabilities();

// Every check above plus the files behind the file mappings and the executable.
Result<void> validate(const state::ProcessState& state);

}  // namespace wpckpt::restore
