// The overtier command line: one function per subcommand, each in the file
// named after its group (cmd_store.cc, cmd_image_io.cc, ...). Each gets the
// arguments after its own name (argv[0] is "overtier SUB ..."), parses them
// with CLI11, prints errors as "overtier: ..." on stderr and returns the
// process exit status: 0 success, 1 the operation failed (damage found,
// I/O error...), 2 bad usage.
#ifndef OVERTIER_TOOLS_CLI_H_
#define OVERTIER_TOOLS_CLI_H_

namespace overtier::cli {

// overtier store init STORE [--volume-set NAME=PATH ...] [--copies N] [--vv-size BYTES]
int StoreCommand(int argc, char** argv);
// overtier image import|export|commit ...
int ImageImport(int argc, char** argv);
int ImageExport(int argc, char** argv);
int ImageCommit(int argc, char** argv);
// overtier image ls|inspect|rm ...
int ImageLs(int argc, char** argv);
int ImageInspect(int argc, char** argv);
int ImageRm(int argc, char** argv);
// overtier image push|pull ...: sharing images between stores
int ImagePush(int argc, char** argv);
int ImagePull(int argc, char** argv);
// overtier image mount STORE NAME MNT: a read-only mount of one image
int ImageMount(int argc, char** argv);
// overtier gc STORE, overtier fsck STORE
int Gc(int argc, char** argv);
int Fsck(int argc, char** argv);
// The migration tier, through the control ioctls on files of a mount
// (cmd_migrate.cc):
// overtier archive [--release [--keep BYTES]] [-r] PATH...
int MigArchive(int argc, char** argv);
// overtier release [--keep BYTES] [-r] PATH...
int MigRelease(int argc, char** argv);
// overtier restore [--range START-END] [--wait] [-r] PATH...
int MigRestore(int argc, char** argv);
// overtier status [--json] [--store STORE] [-r] PATH...
int MigStatus(int argc, char** argv);
// overtier ls [-l] [-a] [-r] [PATH...]: with the migration flag column
int MigLs(int argc, char** argv);
// overtier policy run|check --rules FILE DIR [--dry-run] [--json] (cmd_policy.cc)
int PolicyCommand(int argc, char** argv);

}  // namespace overtier::cli

#endif  // OVERTIER_TOOLS_CLI_H_
