/* test_generate_mesh — dit-generate on a generator mesh equals its
 * in-process rollout.
 *
 *   test-generate-mesh /path/to/dit-generate /path/to/dit-worker
 *
 * Runs `dit-generate -m tiny -n 3 --latent-size 4x6` in process, then with
 * --mesh-devices 0,1 --mesh-backend cpu --mesh-parallel sp (the dit-worker
 * found through $GST_DIT_WORKER, as the element finds it) and with
 * --mesh-parallel tp --worker-path, and compares latents.c0..c2 of the
 * files: relative L2 <= 1e-5 per chunk (f32), the reference not ~0 and its
 * chunks different from each other; then tp once more with --mesh-colocate
 * on (mesh rank 0 a thread of dit-generate), same limit.  A bad layout name
 * or co-location value is a usage error (exit 2). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "safetensors.h"
#include "../common/check.h"

/* Runs argv (NULL-terminated); its exit status, -1 when it did not exit. */
static int
run (char *const *argv)
{
  pid_t pid = fork ();
  if (pid == 0) {
    execv (argv[0], argv);
    _exit (127);
  }
  int st;
  if (pid < 0 || waitpid (pid, &st, 0) != pid || !WIFEXITED (st))
    return -1;
  return WEXITSTATUS (st);
}

static const float *
chunk (const dit_safetensors *st, int k, size_t *n)
{
  char name[32];
  snprintf (name, sizeof name, "latents.c%d", k);
  const dit_st_tensor *t = dit_safetensors_find (st, name);
  if (!t || t->dtype != DIT_ST_F32)
    return NULL;
  *n = t->nbytes / sizeof (float);
  return t->data;
}

static double
rel_l2 (const float *a, const float *b, size_t n, double *max_ref)
{
  double num = 0, den = 0;
  *max_ref = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double) a[i] - b[i];
    num += d * d;
    den += (double) b[i] * b[i];
    *max_ref = fmax (*max_ref, fabs (b[i]));
  }
  return den > 0 ? sqrt (num / den) : INFINITY;
}

static void
compare (const char *ref_path, const char *mesh_path, const char *what)
{
  dit_safetensors *ref = NULL, *mesh = NULL;
  if (dit_safetensors_open (ref_path, &ref) != DIT_OK
      || dit_safetensors_open (mesh_path, &mesh) != DIT_OK) {
    CHECK (0, "%s: %s", what, dit_last_error ());
    dit_safetensors_close (ref);
    return;
  }
  for (int k = 0; k < 3; k++) {
    size_t nr = 0, nm = 0;
    const float *r = chunk (ref, k, &nr), *m = chunk (mesh, k, &nm);
    CHECK (r && m && nr == nm && nr > 0, "%s: chunk %d missing or of "
        "another size", what, k);
    if (!r || !m || nr != nm)
      continue;
    double max_ref, e = rel_l2 (m, r, nr, &max_ref);
    printf ("%s vs in process, chunk %d: rel L2 %.3g, max |ref| %.3g\n", what,
        k, e, max_ref);
    CHECK (max_ref > 0.1 && e <= 1e-5, "%s chunk %d: rel L2 %.3g (max |ref| "
        "%.3g)", what, k, e, max_ref);
    if (k > 0) {
      size_t n0;
      const float *r0 = chunk (ref, 0, &n0);
      double mr;
      CHECK (r0 && rel_l2 (r, r0, nr, &mr) > 1e-2, "chunks 0 and %d equal", k);
    }
  }
  dit_safetensors_close (ref);
  dit_safetensors_close (mesh);
}

int
main (int argc, char **argv)
{
  if (argc < 3) {
    fprintf (stderr, "usage: test-generate-mesh DIT-GENERATE DIT-WORKER\n");
    return 2;
  }
  char dir[] = "/tmp/dit-generate-mesh-XXXXXX";
  if (!mkdtemp (dir)) {
    perror ("mkdtemp");
    return 1;
  }
  char ref[64], sp[64], tp[64], co[64];
  snprintf (ref, sizeof ref, "%s/ref.safetensors", dir);
  snprintf (sp, sizeof sp, "%s/sp.safetensors", dir);
  snprintf (tp, sizeof tp, "%s/tp.safetensors", dir);
  snprintf (co, sizeof co, "%s/co.safetensors", dir);
  setenv ("DIT_CPU_THREADS", "1", 1);
  unsetenv ("GST_DIT_WORKER");
  char *gen = argv[1], *worker = argv[2];
  char *base[] = { gen, "-m", "tiny", "-n", "3", "--latent-size", "4x6", "-q",
    "-o", ref, NULL };
  CHECK (run (base) == 0, "in-process dit-generate failed");
  /* sp: the worker from $GST_DIT_WORKER */
  setenv ("GST_DIT_WORKER", worker, 1);
  char *msp[] = { gen, "-m", "tiny", "-n", "3", "--latent-size", "4x6", "-q",
    "--mesh-devices", "0,1", "--mesh-backend", "cpu", "--mesh-parallel", "sp",
    "-o", sp, NULL };
  CHECK (run (msp) == 0, "dit-generate --mesh-parallel sp failed");
  unsetenv ("GST_DIT_WORKER");
  char *mtp[] = { gen, "-m", "tiny", "-n", "3", "--latent-size", "4x6", "-q",
    "--mesh-devices", "0,1", "--mesh-backend", "cpu", "--mesh-parallel", "tp",
    "--worker-path", worker, "-o", tp, NULL };
  CHECK (run (mtp) == 0, "dit-generate --mesh-parallel tp failed");
  char *bad[] = { gen, "--mesh-devices", "0,1", "--mesh-parallel", "pp", "-o",
    tp, NULL };
  CHECK (run (bad) == 2, "--mesh-parallel pp is not a usage error");
  char *mco[] = { gen, "-m", "tiny", "-n", "3", "--latent-size", "4x6", "-q",
    "--mesh-devices", "0,1", "--mesh-backend", "cpu", "--mesh-parallel", "tp",
    "--mesh-colocate", "on", "--worker-path", worker, "-o", co, NULL };
  CHECK (run (mco) == 0, "dit-generate --mesh-colocate on failed");
  char *badco[] = { gen, "--mesh-devices", "0,1", "--mesh-colocate", "yes",
    "-o", co, NULL };
  CHECK (run (badco) == 2, "--mesh-colocate yes is not a usage error");
  compare (ref, sp, "dit-generate --mesh-parallel sp");
  compare (ref, tp, "dit-generate --mesh-parallel tp");
  compare (ref, co, "dit-generate --mesh-parallel tp --mesh-colocate on");
  unlink (ref);
  unlink (sp);
  unlink (tp);
  unlink (co);
  rmdir (dir);
  if (failures)
    fprintf (stderr, "%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
