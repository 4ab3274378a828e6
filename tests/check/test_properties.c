/* Every property of every dit element, as gst-inspect-1.0 and applications
 * see it on a new element (NULL state), run with G_DEBUG=fatal-criticals
 * (tests/check/meson.build):
 *
 *  - each readable property reads without a CRITICAL, and the value read
 *    lies in its own GParamSpec's range (g_param_value_validate leaves it
 *    as it is);
 *  - each writable property reads back as its declared default on a new
 *    element (what gst-inspect-1.0 prints as the default is what the
 *    element does), and set to that default it reads back the same.
 *
 * This caught ditdecode's framerate, 0/0 on a new element: reading it
 * (gst-inspect-1.0 ditdecode) raised the CRITICAL "gst_value_set_fraction:
 * assertion 'denominator != 0' failed". */
#include <gst/check/gstcheck.h>

static const gchar *const elements[] = { "ditencode", "ditgenerate",
  "ditdecode"
};

static gchar *
value_text (const GValue * v)
{
  return G_VALUE_HOLDS_STRING (v) ? g_strdup_printf ("\"%s\"",
      g_value_get_string (v) ? g_value_get_string (v) : "(NULL)")
      : gst_value_serialize (v);
}

static void
check_property (GstElement * el, GParamSpec * ps)
{
  const gchar *who = GST_OBJECT_NAME (el);
  GValue v = G_VALUE_INIT, checked = G_VALUE_INIT;
  const GValue *def = g_param_spec_get_default_value (ps);

  if (!(ps->flags & G_PARAM_READABLE))
    return;
  g_value_init (&v, ps->value_type);
  g_object_get_property (G_OBJECT (el), ps->name, &v);
  g_value_init (&checked, ps->value_type);
  g_value_copy (&v, &checked);
  fail_if (g_param_value_validate (ps, &checked), "%s: %s reads outside "
      "its own range", who, ps->name);
  g_value_unset (&checked);

  if ((ps->flags & G_PARAM_WRITABLE) && !(ps->flags & G_PARAM_CONSTRUCT_ONLY)
      && g_type_is_a (ps->owner_type, GST_TYPE_ELEMENT)
      && ps->owner_type != GST_TYPE_ELEMENT) {
    gchar *got = value_text (&v), *want = value_text (def);
    fail_unless (g_param_values_cmp (ps, &v, def) == 0, "%s: %s is %s on a "
        "new element, its declared default is %s", who, ps->name, got, want);
    g_free (got);
    g_free (want);
    g_object_set_property (G_OBJECT (el), ps->name, def);
    g_value_reset (&v);
    g_object_get_property (G_OBJECT (el), ps->name, &v);
    fail_unless (g_param_values_cmp (ps, &v, def) == 0, "%s: %s set to its "
        "default does not read back as it", who, ps->name);
  }
  g_value_unset (&v);
}

GST_START_TEST (test_every_property)
{
  for (guint e = 0; e < G_N_ELEMENTS (elements); e++) {
    GstElement *el = gst_element_factory_make (elements[e], NULL);
    GParamSpec **props;
    guint n;

    fail_unless (el != NULL, "no element %s", elements[e]);
    props = g_object_class_list_properties (G_OBJECT_GET_CLASS (el), &n);
    for (guint i = 0; i < n; i++)
      check_property (el, props[i]);
    g_free (props);
    gst_object_unref (el);
  }
}

GST_END_TEST;

static Suite *
properties_suite (void)
{
  Suite *s = suite_create ("ditproperties");
  TCase *tc = tcase_create ("properties");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_every_property);
  return s;
}

GST_CHECK_MAIN (properties);
