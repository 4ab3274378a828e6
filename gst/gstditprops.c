/* GstDitPropDef: table-driven element properties (gstditprops.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstditprops.h"

#define FIELD_OF(instance, d) ((gpointer) ((guint8 *) (instance) + (d)->field))

static GParamSpec *
make_pspec (const GstDitPropDef * d)
{
  const gchar *n = d->name, *k = d->nick, *b = d->blurb;
  gdouble max = d->max == 0 && d->type != G_TYPE_DOUBLE ? G_MAXDOUBLE : d->max;

  switch (d->type) {
    case G_TYPE_STRING:
      return g_param_spec_string (n, k, b, d->sdef, d->flags);
    case G_TYPE_INT:
      return g_param_spec_int (n, k, b, (gint) d->min, (gint) MIN (max,
              G_MAXINT), (gint) d->def, d->flags);
    case G_TYPE_UINT:
      return g_param_spec_uint (n, k, b, (guint) d->min, (guint) MIN (max,
              G_MAXUINT), (guint) d->def, d->flags);
    case G_TYPE_UINT64:
      return g_param_spec_uint64 (n, k, b, 0, G_MAXUINT64, (guint64) d->def,
          d->flags);
    default:
      return g_param_spec_double (n, k, b, d->min, d->max, d->def, d->flags);
  }
}

void
gst_dit_props_install (GObjectClass * klass, const GstDitPropDef * defs,
    guint n)
{
  for (guint i = 1; i < n; i++)
    if (defs[i].type)
      g_object_class_install_property (klass, i, make_pspec (&defs[i]));
}

void
gst_dit_props_init (gpointer instance, const GstDitPropDef * defs, guint n)
{
  for (guint i = 1; i < n; i++) {
    const GstDitPropDef *d = &defs[i];
    gpointer field = FIELD_OF (instance, d);

    if (!d->type || !(d->flags & G_PARAM_WRITABLE))
      continue;
    if (d->type == G_TYPE_STRING)
      *(gchar **) field = g_strdup (d->sdef);
    else if (d->type == G_TYPE_INT)
      *(gint *) field = (gint) d->def;
    else if (d->type == G_TYPE_UINT)
      *(guint *) field = (guint) d->def;
    else if (d->type == G_TYPE_UINT64)
      *(guint64 *) field = (guint64) d->def;
    else
      *(gdouble *) field = d->def;
  }
}

void
gst_dit_props_clear (gpointer instance, const GstDitPropDef * defs, guint n)
{
  for (guint i = 1; i < n; i++)
    if (defs[i].type == G_TYPE_STRING)
      g_clear_pointer ((gchar **) FIELD_OF (instance, &defs[i]), g_free);
}

void
gst_dit_prop_set (gpointer instance, const GstDitPropDef * d,
    const GValue * value)
{
  gpointer field = FIELD_OF (instance, d);
  GType type = G_VALUE_TYPE (value);

  if (type == G_TYPE_STRING) {
    g_free (*(gchar **) field);
    *(gchar **) field = g_value_dup_string (value);
  } else if (type == G_TYPE_INT) {
    *(gint *) field = g_value_get_int (value);
  } else if (type == G_TYPE_UINT) {
    *(guint *) field = g_value_get_uint (value);
  } else if (type == G_TYPE_UINT64) {
    *(guint64 *) field = g_value_get_uint64 (value);
  } else if (type == G_TYPE_DOUBLE) {
    *(gdouble *) field = g_value_get_double (value);
  } else if (G_TYPE_IS_ENUM (type)) {
    *(gint *) field = g_value_get_enum (value);
  } else {
    g_critical ("property %s: type %s is not table-driven", d->name,
        g_type_name (type));
  }
}

void
gst_dit_prop_get (gpointer instance, const GstDitPropDef * d, GValue * value)
{
  gpointer field = FIELD_OF (instance, d);
  GType type = G_VALUE_TYPE (value);

  if (type == G_TYPE_STRING)
    g_value_set_string (value, *(gchar **) field);
  else if (type == G_TYPE_INT)
    g_value_set_int (value, *(gint *) field);
  else if (type == G_TYPE_UINT)
    g_value_set_uint (value, *(guint *) field);
  else if (type == G_TYPE_UINT64)
    g_value_set_uint64 (value, *(guint64 *) field);
  else if (type == G_TYPE_DOUBLE)
    g_value_set_double (value, *(gdouble *) field);
  else if (G_TYPE_IS_ENUM (type))
    g_value_set_enum (value, *(gint *) field);
  else
    g_critical ("property %s: type %s is not table-driven", d->name,
        g_type_name (type));
}

void
gst_dit_value_array_append (GValue * array, GType type, gconstpointer values,
    gint n)
{
  GValue v = G_VALUE_INIT;

  g_value_init (&v, type);
  for (gint i = 0; i < n; i++) {
    if (type == G_TYPE_DOUBLE)
      g_value_set_double (&v, ((const gdouble *) values)[i]);
    else
      g_value_set_int (&v, ((const gint *) values)[i]);
    gst_value_array_append_value (array, &v);
  }
  g_value_unset (&v);
}
