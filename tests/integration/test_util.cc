#include "test_util.h"

#include <fcntl.h>
#include <grp.h>
#include <pty.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace overtier::it {
namespace {

// argv for exec, built before fork (the child of a threaded test should
// not allocate).
std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  return argv;
}

// A temp file already unlinked, for a child's output; -1 on error.
int OutputFile() {
  std::string tmpl = TempTemplate("ovt-test-out");
  int fd = mkstemp(tmpl.data());
  if (fd >= 0) unlink(tmpl.c_str());
  return fd;
}

std::string ReadAll(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  off_t off = 0;
  while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
    s.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return s;
}

// Forks and execs args with stdout to out_fd and stderr to err_fd (-1:
// inherited), stdin from /dev/null; the wait status, -1 if it did not run.
int RunChild(const std::vector<std::string>& args, int out_fd, int err_fd, uid_t uid,
             int timeout_s) {
  std::vector<char*> argv = Argv(args);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (out_fd >= 0) dup2(out_fd, 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    int in = open("/dev/null", O_RDONLY);
    if (in >= 0) dup2(in, 0);
    if (uid != static_cast<uid_t>(-1)) {
      if (setgroups(0, nullptr) != 0 || setresgid(uid, uid, uid) != 0 ||
          setresuid(uid, uid, uid) != 0)
        _exit(126);
    }
    alarm(static_cast<unsigned>(timeout_s));
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return status;
}

}  // namespace

std::string EnvOr(const char* name, const std::string& def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : def;
}

std::string TempTemplate(const std::string& stem) {
  return EnvOr("TMPDIR", "/tmp") + "/" + stem + ".XXXXXX";
}

std::string OvertierBin() {
  std::string bin = EnvOr("OVERTIER_BIN");
  if (!bin.empty()) return bin;
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "overtier";
  std::string dir(self, static_cast<size_t>(n));
  dir.resize(dir.rfind('/'));
  return dir + "/../../tools/overtier";
}

Result RunArgs(const std::vector<std::string>& args, uid_t uid, int timeout_s) {
  Result r;
  int out = OutputFile(), err = OutputFile();
  if (out >= 0 && err >= 0) {
    int status = RunChild(args, out, err, uid, timeout_s);
    r.out = ReadAll(out);
    r.err = ReadAll(err);
    if (status != -1) r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  if (out >= 0) close(out);
  if (err >= 0) close(err);
  return r;
}

int RunCmd(const std::vector<std::string>& args, std::string* out, int timeout_s) {
  int fd = OutputFile();
  if (fd < 0) return -1;
  int status = RunChild(args, fd, fd, static_cast<uid_t>(-1), timeout_s);
  if (out != nullptr) *out = ReadAll(fd);
  close(fd);
  return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int RunLogged(const std::vector<std::string>& args, const std::string& log, int timeout_s) {
  int fd = log.empty() ? -1 : open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int status = RunChild(args, fd, fd, static_cast<uid_t>(-1), timeout_s);
  if (fd >= 0) close(fd);
  return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Result Cli(std::vector<std::string> words, uid_t uid) {
  words.insert(words.begin(), OvertierBin());
  return RunArgs(words, uid);
}

Result CliOnTerminal(std::vector<std::string> words) {
  words.insert(words.begin(), OvertierBin());
  Result r;
  int master = -1, slave = -1;
  if (openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) return r;
  struct termios t;
  if (tcgetattr(slave, &t) == 0) {
    cfmakeraw(&t);
    tcsetattr(slave, TCSANOW, &t);
  }
  // Read while the child writes: a full terminal would block it.
  std::thread reader([master, &r] {
    char buf[4096];
    ssize_t n;
    while ((n = read(master, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
      if (n > 0) r.out.append(buf, static_cast<size_t>(n));
  });
  int err = OutputFile();
  int status = RunChild(words, slave, err, static_cast<uid_t>(-1), 120);
  close(slave);  // the reader ends (EIO) once no one holds the terminal
  reader.join();
  close(master);
  if (err >= 0) {
    r.err = ReadAll(err);
    close(err);
  }
  if (status != -1) r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string Describe(const Result& r) {
  return "rc " + std::to_string(r.rc) + "\n--- stdout ---\n" + r.out + "--- stderr ---\n" + r.err;
}

pid_t Spawn(const std::vector<std::string>& args, const std::string& log,
            const std::vector<std::string>& env) {
  std::vector<char*> argv = Argv(args);
  // The environment: ours, with the entries of `env` replacing same names.
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    bool replaced = false;
    for (const auto& x : env) {
      size_t eq = x.find('=');
      if (entry.substr(0, entry.find('=')) == std::string_view(x).substr(0, eq)) replaced = true;
    }
    if (!replaced) envp.push_back(*e);
  }
  for (const auto& x : env) envp.push_back(const_cast<char*>(x.c_str()));
  envp.push_back(nullptr);

  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  // The child must not outlive a crashed test binary.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(126);
  int in = open("/dev/null", O_RDONLY);
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (in >= 0) dup2(in, 0);
  if (out >= 0) {
    dup2(out, 1);
    dup2(out, 2);
  }
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  execve(argv[0], argv.data(), envp.data());
  dprintf(2, "exec %s: %s\n", argv[0], std::strerror(errno));
  _exit(127);
}

bool IsMountPoint(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // id parent major:minor root mountpoint ...
    std::istringstream f(line);
    std::string id, parent, dev, root, mp;
    f >> id >> parent >> dev >> root >> mp;
    if (mp == path) return true;
  }
  return false;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t FlockHolder(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  std::istringstream locks(Slurp("/proc/locks"));
  std::string line;
  while (std::getline(locks, line)) {
    // "1: FLOCK  ADVISORY  WRITE 1234 fe:01:5678 0 EOF"
    std::istringstream f(line);
    std::string n, kind, adv, mode, dev_ino;
    long pid = -1;
    if (!(f >> n >> kind >> adv >> mode >> pid >> dev_ino) || kind != "FLOCK") continue;
    const size_t colon = dev_ino.rfind(':');
    if (colon != std::string::npos && std::stoull(dev_ino.substr(colon + 1)) == st.st_ino)
      return static_cast<pid_t>(pid);
  }
  return -1;
}

std::string Payload(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

}  // namespace overtier::it
