/* test_mesh_config — mesh/dit_mesh_config.h: the user's mesh options to a
 * checked spec.  Every refusal is asserted with the words of its message
 * (the setting's name and value); the worker lookup is checked in its
 * order (explicit path, $GST_DIT_WORKER, the installed directory, PATH)
 * with executables made in a temporary directory.
 */
#include "dit_config.h"
#include "dit_mesh_config.h"
#include "../common/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static dit_mesh_spec spec;

static dit_status
parse (const char *devices, const char *listen, int ranks, const char *backend,
    const char *device, const char *worker)
{
  dit_mesh_options o;
  dit_mesh_options_init (&o);
  o.devices = devices;
  o.listen = listen;
  o.ranks = ranks;
  o.backend = backend;
  o.stage0_device = device;
  o.worker_path = worker;
  return dit_mesh_spec_parse (&o, &spec);
}

static void
refused (dit_status st, const char *want)
{
  CHECK (st != DIT_OK && strstr (dit_last_error (), want), "expected an error "
      "with '%s', got %d '%s'", want, st, st ? dit_last_error () : "");
}

static void
make_exe (const char *path)
{
  FILE *f = fopen (path, "w");
  if (f) {
    fputs ("#!/bin/sh\nexit 0\n", f);
    fclose (f);
  }
  chmod (path, 0755);
}

int
main (void)
{
  char dir[] = "/tmp/test-mesh-config-XXXXXX";
  char worker[64], inst[64], path_dir[64], on_path[128];
  if (!mkdtemp (dir))
    return 1;
  snprintf (worker, sizeof worker, "%s/my-worker", dir);
  snprintf (inst, sizeof inst, "%s/inst", dir);
  snprintf (path_dir, sizeof path_dir, "%s/bin", dir);
  snprintf (on_path, sizeof on_path, "%s/dit-worker", path_dir);
  make_exe (worker);
  mkdir (inst, 0755);
  mkdir (path_dir, 0755);
  unsetenv ("GST_DIT_WORKER");

  /* no mesh */
  CHECK (parse (NULL, NULL, 0, NULL, "cpu", NULL) == DIT_OK && spec.ranks == 0,
      "no mesh");
  CHECK (parse ("  ", "", 0, NULL, "cpu", NULL) == DIT_OK && spec.ranks == 0,
      "blank devices");

  /* a spawned mesh */
  CHECK (parse ("0, 1", NULL, 0, "cpu", "cpu", worker) == DIT_OK, "0,1: %s",
      dit_last_error ());
  CHECK (spec.ranks == 2 && spec.tp == 2 && spec.layout == DIT_MESH_LAYOUT_TP
      && spec.n_devices == 2 && spec.devices[1] == 1
      && strcmp (spec.backend, "cpu") == 0 && strcmp (spec.worker, worker) == 0
      && spec.listen[0] == 0, "0,1 spec");
  dit_mesh_config c;
  dit_mesh_config_default (&c);
  dit_mesh_spec_apply (&spec, &c);
  CHECK (c.ranks == 2 && c.spawn && c.worker_path == spec.worker
      && c.devices == spec.devices && c.listen == NULL
      && strcmp (c.backend, "cpu") == 0 && c.chunk_timeout_ms == 10000,
      "applied config");
  CHECK (parse ("2,3", NULL, 2, NULL, "cuda:1", worker) == DIT_OK
      && strcmp (spec.backend, "cuda") == 0, "backend from the device");
  CHECK (parse ("0", NULL, 0, NULL, "cpu", worker) == DIT_OK && spec.ranks == 1,
      "TP 1");

  /* refusals */
  refused (parse ("0,1,2", NULL, 0, "cpu", "cpu", worker), "must be 1, 2, 4 or 8");
  refused (parse ("0,x", NULL, 0, "cpu", "cpu", worker), "mesh-devices '0,x'");
  refused (parse ("0,1,", NULL, 0, "cpu", "cpu", worker), "comma-separated");
  refused (parse ("0,1", NULL, 4, "cpu", "cpu", worker), "mesh-ranks=4 but");
  refused (parse ("1,1", NULL, 0, "cuda", "cpu", worker), "names device 1 twice");
  CHECK (parse ("1,1", NULL, 0, "cpu", "cpu", worker) == DIT_OK,
      "CPU ranks may share a device");
  refused (parse ("0,1", NULL, 0, "tpu", "cpu", worker), "mesh-backend 'tpu'");
  refused (parse (NULL, "127.0.0.1:29999", 0, "cpu", "cpu", NULL),
      "needs mesh-ranks");
  refused (parse (NULL, "somehost", 2, "cpu", "cpu", NULL), "fixed port");
  CHECK (parse (NULL, "127.0.0.1:29999", 2, "cpu", "cpu", "/nonexistent") == DIT_OK
      && spec.ranks == 2 && spec.worker[0] == 0, "listen: no worker needed");
  dit_mesh_spec_apply (&spec, &c);
  CHECK (!c.spawn && c.listen && strcmp (c.listen, "127.0.0.1:29999") == 0,
      "listen config");
  refused (parse ("0,1", NULL, 0, "cpu", "cpu", "/nonexistent/dit-worker"),
      "cannot find the dit-worker executable (tried worker-path "
      "'/nonexistent/dit-worker')");

  /* the layout */
  dit_mesh_layout l;
  CHECK (dit_mesh_layout_parse (NULL, &l) == DIT_OK && l == DIT_MESH_LAYOUT_TP
      && strcmp (dit_mesh_layout_name (l), "tp") == 0, "default layout");
  CHECK (dit_mesh_layout_parse ("sp", &l) == DIT_OK && l == DIT_MESH_LAYOUT_SP
      && strcmp (dit_mesh_layout_name (l), "sp") == 0, "sp");
  CHECK (dit_mesh_layout_parse ("HYBRID", &l) == DIT_OK
      && l == DIT_MESH_LAYOUT_HYBRID, "hybrid");
  refused (dit_mesh_layout_parse ("pp", &l), "mesh layout 'pp': expected tp");

  /* the layouts' degrees */
  int dsp, dtp;
  CHECK (dit_mesh_layout_degrees (DIT_MESH_LAYOUT_TP, 4, 0, &dsp, &dtp) == DIT_OK
      && dsp == 1 && dtp == 4, "tp 4 -> 1 x 4");
  CHECK (dit_mesh_layout_degrees (DIT_MESH_LAYOUT_SP, 4, 0, &dsp, &dtp) == DIT_OK
      && dsp == 4 && dtp == 1, "sp 4 -> 4 x 1");
  CHECK (dit_mesh_layout_degrees (DIT_MESH_LAYOUT_HYBRID, 8, 0, &dsp, &dtp)
      == DIT_OK && dsp == 4 && dtp == 2, "hybrid 8 -> 4 x 2");
  CHECK (dit_mesh_layout_degrees (DIT_MESH_LAYOUT_HYBRID, 8, 4, &dsp, &dtp)
      == DIT_OK && dsp == 2 && dtp == 4, "hybrid 8, mesh-tp 4 -> 2 x 4");
  refused (dit_mesh_layout_degrees (DIT_MESH_LAYOUT_HYBRID, 2, 2, &dsp, &dtp),
      "at least 2 groups");
  refused (dit_mesh_layout_degrees (DIT_MESH_LAYOUT_HYBRID, 6, 4, &dsp, &dtp),
      "mesh-tp=4");
  refused (dit_mesh_layout_degrees (DIT_MESH_LAYOUT_SP, 4, 2, &dsp, &dtp),
      "hybrid layout only");
  dit_mesh_options lo;
  dit_mesh_options_init (&lo);
  lo.devices = "0,1,2,3,4";
  lo.backend = "cpu";
  lo.worker_path = worker;
  lo.layout = "sp";
  CHECK (dit_mesh_spec_parse (&lo, &spec) == DIT_OK && spec.sp == 5
      && spec.tp == 1, "sp 5: %s", dit_last_error ());
  lo.layout = "tp";
  refused (dit_mesh_spec_parse (&lo, &spec), "degree 5 must be 1, 2, 4 or 8");
  lo.devices = "0,1,2,3";
  lo.layout = "hybrid";
  lo.mesh_tp = 2;
  CHECK (dit_mesh_spec_parse (&lo, &spec) == DIT_OK && spec.sp == 2
      && spec.tp == 2, "hybrid 2 x 2: %s", dit_last_error ());
  lo.mesh_tp = 0;

  /* the device-count rule, 1 to 9 devices in every layout: tp takes 1, 2,
   * 4 or 8, sp 1 to 8 (SP 5 included, which dit_model_sp_check accepts for
   * wan-14b), hybrid 4, 6 or 8 (mesh-tp 2) and 8 (mesh-tp 4); 9 is past
   * DIT_MESH_MAX_RANKS, refused with the count the list may have */
  static const struct {
    const char *layout;
    int mesh_tp;
    const char *ok;             /* ok[n - 1] == 'y': n devices accepted */
  } counts[] = {
    { "tp", 0, "yy.y...y." },
    { "sp", 0, "yyyyyyyy." },
    { "hybrid", 0, "...y.y.y." },
    { "hybrid", 4, ".......y." },
  };
  char list[64];
  for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
    for (int n = 1; n <= 9; n++) {
      list[0] = '\0';
      for (int d = 0; d < n; d++)
        snprintf (list + strlen (list), sizeof list - strlen (list), "%s%d",
            d ? "," : "", d);
      lo.devices = list;
      lo.layout = counts[k].layout;
      lo.mesh_tp = counts[k].mesh_tp;
      dit_status st = dit_mesh_spec_parse (&lo, &spec);
      const int want = counts[k].ok[n - 1] == 'y';
      CHECK ((st == DIT_OK) == want, "%d devices in layout %s (mesh-tp %d): "
          "%s, expected %s (%s)", n, counts[k].layout, counts[k].mesh_tp,
          st == DIT_OK ? "accepted" : "refused", want ? "accepted" : "refused",
          st == DIT_OK ? "" : dit_last_error ());
      CHECK (st != DIT_OK || (spec.ranks == n && spec.sp * spec.tp == n),
          "%d devices in layout %s: ranks %d, sp %d x tp %d", n,
          counts[k].layout, spec.ranks, spec.sp, spec.tp);
      if (n == 9)
        refused (st, "list of 1 to 8 device indices");
    }
  }
  lo.layout = "sp";
  lo.mesh_tp = 0;
  lo.devices = "0,1,2,3,4";
  dit_model_config big;
  dit_model_config_preset ("wan-14b", &big);
  CHECK (dit_mesh_spec_parse (&lo, &spec) == DIT_OK
      && dit_mesh_spec_check_model (&spec, &big) == DIT_OK, "sp 5 of "
      "wan-14b (40 heads): %s", dit_last_error ());
  lo.devices = "0,1,2,3";

  /* degrees against a model: the tiny preset has 2 heads */
  dit_model_config m;
  dit_model_config_preset ("tiny", &m);
  CHECK (parse ("0,1,2,3", NULL, 0, "cpu", "cpu", worker) == DIT_OK, "TP 4");
  refused (dit_mesh_spec_check_model (&spec, &m), "divide its 2 heads");
  CHECK (parse ("0,1", NULL, 0, "cpu", "cpu", worker) == DIT_OK
      && dit_mesh_spec_check_model (&spec, &m) == DIT_OK, "TP 2 fits");
  /* SP 4 of 2 heads */
  lo.backend = "cpu";
  lo.layout = "sp";
  CHECK (dit_mesh_spec_parse (&lo, &spec) == DIT_OK, "sp 4");
  refused (dit_mesh_spec_check_model (&spec, &m), "divide its 2 heads");

  /* the worker lookup order */
  dit_mesh_options o;
  dit_mesh_options_init (&o);
  o.devices = "0";
  o.backend = "cpu";
  o.installed_dir = inst;
  setenv ("GST_DIT_WORKER", worker, 1);
  CHECK (dit_mesh_spec_parse (&o, &spec) == DIT_OK
      && strcmp (spec.worker, worker) == 0, "GST_DIT_WORKER");
  setenv ("GST_DIT_WORKER", "/nonexistent-env-worker", 1);
  refused (dit_mesh_spec_parse (&o, &spec), "GST_DIT_WORKER "
      "'/nonexistent-env-worker'");
  unsetenv ("GST_DIT_WORKER");
  char installed[128];
  snprintf (installed, sizeof installed, "%s/dit-worker", inst);
  make_exe (installed);
  CHECK (dit_mesh_spec_parse (&o, &spec) == DIT_OK
      && strcmp (spec.worker, installed) == 0, "installed worker");
  unlink (installed);
  make_exe (on_path);
  const char *old_path = getenv ("PATH");
  char *saved = old_path ? strdup (old_path) : NULL;
  setenv ("PATH", path_dir, 1);
  CHECK (dit_mesh_spec_parse (&o, &spec) == DIT_OK
      && strcmp (spec.worker, on_path) == 0, "worker on PATH: %s", spec.worker);
  unlink (on_path);
  refused (dit_mesh_spec_parse (&o, &spec), "and PATH");
  if (saved) {
    setenv ("PATH", saved, 1);
    free (saved);
  }

  /* a tool's own names in the messages */
  o.devices = "0,y";
  o.devices_name = "--mesh-devices";
  refused (dit_mesh_spec_parse (&o, &spec), "--mesh-devices '0,y'");

  unlink (worker);
  rmdir (inst);
  rmdir (path_dir);
  rmdir (dir);
  if (failures)
    fprintf (stderr, "%d failures\n", failures);
  else
    printf ("test-mesh-config: ok\n");
  return failures ? 1 : 0;
}
