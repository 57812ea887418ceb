// posix_spawn for the local launcher (lib/backends/local/launcher-main.ts), as a Node-API addon.
//
// Why: node's child_process forks the launcher, and a fork copies the page tables of a process
// of some 50 MB and then pays a page fault for each page either side touches before the child
// execs: 3.3-3.7 ms of the launcher's CPU per job on a 2-core VM, about what xargs pays for a
// whole job. glibc's posix_spawn uses clone(CLONE_VM | CLONE_VFORK): nothing is copied, and the
// same spawn costs the launcher about 0.4 ms.
//
//   spawn(file, argv, envp, cwd, outFd) -> pid > 0, or -errno (negative, as libuv's codes)
//     file:  the program's path; argv, envp: arrays of strings (argv[0] included, envp "K=V")
//     cwd:   the directory the child starts in
//     outFd: the child's stdout and stderr; its stdin is /dev/null
//     The child leads a session (and process group) of its own, with every signal at its default
//     action and none blocked, as child_process's `detached` gives it.
//   reap() -> [pid, waitStatus, pid, waitStatus, ...]
//     every child that has ended, by waitpid(-1, WNOHANG): call it on SIGCHLD.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>

/** A JS string as a new C string (NULL if it is not a string). */
static char *string_of(napi_env env, napi_value value) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  char *text = malloc(length + 1);
  if (text) napi_get_value_string_utf8(env, value, text, length + 1, &length);
  return text;
}

static void free_strings(char **list) {
  if (!list) return;
  for (char **p = list; *p; p++) free(*p);
  free(list);
}

/** A JS array of strings as a NULL-terminated array of new C strings (NULL on any other value). */
static char **strings_of(napi_env env, napi_value array) {
  uint32_t count;
  if (napi_get_array_length(env, array, &count) != napi_ok) return NULL;
  char **list = calloc(count + 1, sizeof(char *));
  if (!list) return NULL;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    if (napi_get_element(env, array, i, &item) != napi_ok || !(list[i] = string_of(env, item))) {
      free_strings(list);
      return NULL;
    }
  }
  return list;
}

static napi_value int_value(napi_env env, int32_t number) {
  napi_value value;
  napi_create_int32(env, number, &value);
  return value;
}

static int start(const char *file, char *const argv[], char *const envp[], const char *cwd, int out, pid_t *pid) {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  sigset_t every, none;
  sigfillset(&every);
  sigdelset(&every, SIGKILL);
  sigdelset(&every, SIGSTOP);
  sigemptyset(&none);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigdefault(&attr, &every);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out, 1);
  posix_spawn_file_actions_adddup2(&actions, out, 2);
  posix_spawn_file_actions_addchdir_np(&actions, cwd);
  int error = posix_spawn(pid, file, &actions, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return error;
}

static napi_value Spawn(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  int32_t out;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 5 ||
      napi_get_value_int32(env, args[4], &out) != napi_ok) {
    napi_throw_type_error(env, NULL, "spawn(file, argv, envp, cwd, outFd)");
    return NULL;
  }
  char *file = string_of(env, args[0]);
  char **argv = strings_of(env, args[1]);
  char **envp = strings_of(env, args[2]);
  char *cwd = string_of(env, args[3]);
  int32_t result;
  if (!file || !argv || !envp || !cwd) {
    result = -EINVAL;
  } else {
    pid_t pid;
    int error = start(file, argv, envp, cwd, out, &pid);
    result = error ? -error : pid;
  }
  free(file);
  free(cwd);
  free_strings(argv);
  free_strings(envp);
  return int_value(env, result);
}

static napi_value Reap(napi_env env, napi_callback_info info) {
  napi_value ended;
  napi_create_array(env, &ended);
  uint32_t n = 0;
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    napi_set_element(env, ended, n++, int_value(env, pid));
    napi_set_element(env, ended, n++, int_value(env, status));
  }
  return ended;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "spawn", NAPI_AUTO_LENGTH, Spawn, NULL, &fn);
  napi_set_named_property(env, exports, "spawn", fn);
  napi_create_function(env, "reap", NAPI_AUTO_LENGTH, Reap, NULL, &fn);
  napi_set_named_property(env, exports, "reap", fn);
  return exports;
}
