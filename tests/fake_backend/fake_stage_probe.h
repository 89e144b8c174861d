/* What the staging-probe variant of fake_backend (libferry-backend-fakestage.so) records
 * while armed, read by tests through dlsym on the loaded plugin: every copy_to_host and
 * copy_from_host with its size, and whether a call of the other direction ran at the same
 * time. While armed, each call waits (up to FAKE_STAGE_WAIT_MS) for one of the other
 * direction to start, so two legs that a correct core runs concurrently are seen
 * overlapping every time, and a core that runs them one after the other never is. */
#ifndef FERRY_FAKE_STAGE_PROBE_H
#define FERRY_FAKE_STAGE_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAKE_STAGE_MAX_CALLS 256
#define FAKE_STAGE_WAIT_MS 2000

typedef enum fake_stage_dir {
    FAKE_STAGE_TO_HOST = 0,   /* copy_to_host: the download leg */
    FAKE_STAGE_FROM_HOST = 1, /* copy_from_host: the upload leg */
} fake_stage_dir;

typedef struct fake_stage_call {
    fake_stage_dir dir;
    int32_t device;
    size_t nbytes;
    bool overlapped; /* a call of the other direction was in flight during this one */
} fake_stage_call;

/* Clears the log and starts (true) or stops (false) recording. */
typedef void (*fake_stage_arm_fn)(bool on);
/* Copies up to cap calls, in the order they started, and returns how many were logged
 * (more than FAKE_STAGE_MAX_CALLS are counted but not kept). */
typedef size_t (*fake_stage_log_fn)(fake_stage_call *out, size_t cap);

#define FAKE_STAGE_ARM_SYMBOL "fake_stage_arm"
#define FAKE_STAGE_LOG_SYMBOL "fake_stage_log"

#endif /* FERRY_FAKE_STAGE_PROBE_H */
