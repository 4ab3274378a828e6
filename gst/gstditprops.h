/* GstDitPropDef — an element's plain properties declared in one table.
 *
 * Each entry gives a property's spec (name, nick, blurb, type, range,
 * default, flags) and the offset of the instance field that holds it, so
 * installing the specs, setting the defaults, set_property, get_property
 * and freeing the strings are the same few loops for every element.  Types:
 * string (gchar *), int (gint), uint (guint), uint64 (guint64), double
 * (gdouble), and enums (gint field; their spec is made by the element,
 * whose entry then has type 0 and only the field).  The caller holds the
 * object lock around gst_dit_prop_set / gst_dit_prop_get.
 */
#ifndef __GST_DIT_PROPS_H__
#define __GST_DIT_PROPS_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_DIT_PARAM_RW (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS)
#define GST_DIT_PARAM_READY (GST_DIT_PARAM_RW | GST_PARAM_MUTABLE_READY)
#define GST_DIT_PARAM_PLAYING (GST_DIT_PARAM_RW | GST_PARAM_MUTABLE_PLAYING)
#define GST_DIT_PARAM_RO (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)

typedef struct _GstDitPropDef
{
  const gchar *name, *nick, *blurb;
  GType type;                   /* 0: the element installs the spec */
  gdouble min, max, def;        /* max 0: the type's maximum (not double) */
  const gchar *sdef;            /* a string's default */
  GParamFlags flags;
  gsize field;                  /* G_STRUCT_OFFSET of the value */
} GstDitPropDef;

/* Table entries the elements share.  GST_DIT_PROP_STAT: a read-only
 * statistic (type t) in the field at offset `off`; GST_DIT_PROP_DEVICE and
 * GST_DIT_PROP_VAE_MODEL: the session's device and the VAE weights, the
 * same property on every element that has it. */
#define GST_DIT_PROP_STAT(name, nick, blurb, t, off) { name, nick, blurb, t, \
    0, G_MAXDOUBLE, 0, NULL, GST_DIT_PARAM_RO, off }
#define GST_DIT_PROP_DEVICE(off) { "device", "Device", "Backend device of " \
    "the session: cpu, or cuda:N", G_TYPE_STRING, .sdef = \
    GST_DIT_DEFAULT_DEVICE, .flags = GST_DIT_PARAM_READY, .field = off }
#define GST_DIT_PROP_VAE_MODEL(off) { "vae-model", "VAE model", "VAE " \
    "weights: a preset (tiny, wan: seeded synthetic; demo once installed) " \
    "or a safetensors path (NULL = " GST_DIT_DEFAULT_VAE ")", \
    G_TYPE_STRING, .flags = GST_DIT_PARAM_READY, .field = off }

/* Installs defs[1..n-1] that have a type, as property ids 1..n-1. */
void gst_dit_props_install (GObjectClass * klass, const GstDitPropDef * defs,
    guint n);
/* The writable properties' defaults into `instance`. */
void gst_dit_props_init (gpointer instance, const GstDitPropDef * defs,
    guint n);
/* Frees the string properties of `instance`. */
void gst_dit_props_clear (gpointer instance, const GstDitPropDef * defs,
    guint n);

/* `value` (of the property's type) into / out of the field of `d`. */
void gst_dit_prop_set (gpointer instance, const GstDitPropDef * d,
    const GValue * value);
void gst_dit_prop_get (gpointer instance, const GstDitPropDef * d,
    GValue * value);

/* Appends n doubles (type G_TYPE_DOUBLE) or ints (G_TYPE_INT) to a
 * GstValueArray value. */
void gst_dit_value_array_append (GValue * array, GType type,
    gconstpointer values, gint n);

G_END_DECLS
#endif
