/* dit_check_presets — the weights and device of every dit element a
 * gst-check test makes.
 *
 * The element tests check mechanics (caps, frame counts, timestamps,
 * events, errors), not what the video means, so they run on the seeded
 * random `tiny` presets: no files, the same values on every machine, and
 * fast enough under valgrind.  They name those presets rather than rely
 * on the elements' defaults, which are meant for users and may change.
 *
 * dit_check_use_presets () replaces the `constructed` vfunc of ditencode,
 * ditgenerate and ditdecode: every instance, whether gst_parse_launch, a
 * harness or gst_element_factory_make makes it, gets model, vae-model and
 * text-model "tiny" (those of the three it has) and, with a `device`, that
 * device.  They are set as the element is constructed, before parse_launch
 * or the test sets its own, so a test that names other weights (a
 * checkpoint path, a misspelled preset) still gets them.
 */
#ifndef DIT_CHECK_PRESETS_H
#define DIT_CHECK_PRESETS_H

#include <gst/gst.h>

#define DIT_CHECK_PRESET "tiny"

static const gchar *const dit_check_element_names[] = { "ditencode",
  "ditgenerate", "ditdecode"
};

static GType dit_check_types[G_N_ELEMENTS (dit_check_element_names)];
static void (*dit_check_constructed[G_N_ELEMENTS (dit_check_element_names)])
    (GObject * object);
static const gchar *dit_check_device;

static void
dit_check_set_presets (GObject * object)
{
  static const gchar *const props[] = { "model", "vae-model", "text-model" };

  for (guint i = 0; i < G_N_ELEMENTS (dit_check_types); i++) {
    if (G_OBJECT_TYPE (object) != dit_check_types[i])
      continue;
    if (dit_check_constructed[i])
      dit_check_constructed[i] (object);
    for (guint p = 0; p < G_N_ELEMENTS (props); p++)
      if (g_object_class_find_property (G_OBJECT_GET_CLASS (object), props[p]))
        g_object_set (object, props[p], DIT_CHECK_PRESET, NULL);
    if (dit_check_device)
      g_object_set (object, "device", dit_check_device, NULL);
  }
}

/* Call once, after gst_init (GST_CHECK_MAIN's suite function is fine);
 * `device` (cpu, cuda:N) or NULL for the elements' own default. */
static void
dit_check_use_presets (const gchar * device)
{
  dit_check_device = device;
  for (guint i = 0; i < G_N_ELEMENTS (dit_check_element_names); i++) {
    GstElementFactory *f = gst_element_factory_find (dit_check_element_names[i]);
    GstPluginFeature *loaded;
    GObjectClass *klass;

    if (!f)
      g_error ("element %s not found: is GST_PLUGIN_PATH_1_0 the build's gst/?",
          dit_check_element_names[i]);
    loaded = gst_plugin_feature_load (GST_PLUGIN_FEATURE (f));
    dit_check_types[i] =
        gst_element_factory_get_element_type (GST_ELEMENT_FACTORY (loaded));
    klass = g_type_class_ref (dit_check_types[i]);
    if (klass->constructed != dit_check_set_presets) {
      dit_check_constructed[i] = klass->constructed;
      klass->constructed = dit_check_set_presets;
    }
    gst_object_unref (loaded);
    gst_object_unref (f);
  }
}

#endif
