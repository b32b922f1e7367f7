/* sysv_tree: a parent and a child sharing a SysV shared memory segment by
 * key (not removed: it outlives them, as a service's segment does).
 *   sysv_tree KEY ROUNDS
 * The child adds 1 to a counter in the segment every 10 ms, ROUNDS times,
 * and keeps a checksum of every value it wrote in its own memory; the
 * parent waits for it and prints "RESULT <counter> <child's status>", then
 * checks that the segment is still the one of KEY (shmget without
 * IPC_CREAT gives the same id, the size is right) and removes it. Prints
 * "READY" once the child runs. Exit 0 when every check held. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SIZE (3 * 4096 + 100)

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: sysv_tree KEY ROUNDS\n");
    return 2;
  }
  key_t key = (key_t)strtol(argv[1], NULL, 0);
  long rounds = strtol(argv[2], NULL, 10);
  setvbuf(stdout, NULL, _IOLBF, 0);
  int id = shmget(key, SIZE, IPC_CREAT | IPC_EXCL | 0600);
  if (id < 0) {
    perror("shmget");
    return 1;
  }
  volatile uint64_t* seg = shmat(id, NULL, 0);
  if (seg == (void*)-1) {
    perror("shmat");
    return 1;
  }
  seg[0] = 0;
  pid_t child = fork();
  if (child == 0) {
    uint64_t sum = 0;
    for (long i = 0; i < rounds; ++i) {
      seg[0] = seg[0] + 1;
      sum += seg[0];
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    /* The sum of 1..rounds: the child's memory and the segment agree. */
    _exit(sum == (uint64_t)rounds * (rounds + 1) / 2 ? 0 : 3);
  }
  printf("READY %d %d\n", (int)getpid(), (int)child);
  int status = 0;
  if (waitpid(child, &status, 0) != child) return 1;
  int again = shmget(key, 0, 0);
  struct shmid_ds ds;
  int same = again == id && shmctl(id, IPC_STAT, &ds) == 0 && ds.shm_segsz == SIZE;
  printf("RESULT %llu %d %s\n", (unsigned long long)seg[0], WIFEXITED(status) ? WEXITSTATUS(status) : -1,
         same ? "same-segment" : "other-segment");
  shmctl(id, IPC_RMID, NULL);
  return same ? 0 : 1;
}
