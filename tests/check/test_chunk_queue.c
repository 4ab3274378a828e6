/* gst-check tests of ditgenerate's two helpers:
 *  - GstDitChunkQueue (gst/gstditqueue.h): items come out in arrival order;
 *    a push beyond the limit blocks until the task pops (events never
 *    block); a pop times out with GST_FLOW_OK and no item; stopping wakes
 *    a blocked push and a waiting pop with the stop's result; the first
 *    failure wins; a flush drops everything; raising the limit lets a
 *    blocked push through;
 *  - GstDitPropDef (gst/gstditprops.h): the table's specs are installed with
 *    their ranges and defaults, the defaults land in the fields, set and get
 *    go through the fields, and the strings are freed. */
#include <gst/check/gstcheck.h>

#include "gstditprops.h"
#include "gstditqueue.h"

typedef struct pusher
{
  GstDitChunkQueue *q;
  GstFlowReturn ret;
  gint done;                    /* atomic */
} pusher;

static gpointer
push_one (gpointer data)
{
  pusher *p = data;

  p->ret = gst_dit_chunk_queue_push_buffer (p->q, gst_buffer_new ());
  g_atomic_int_set (&p->done, 1);
  return NULL;
}

/* Whether the pusher finished within `ms` milliseconds. */
static gboolean
finishes_within (pusher * p, gint ms)
{
  for (gint i = 0; i < ms; i++) {
    if (g_atomic_int_get (&p->done))
      return TRUE;
    g_usleep (1000);
  }
  return g_atomic_int_get (&p->done);
}

GST_START_TEST (test_queue_order_and_bound)
{
  GstDitChunkQueue q;
  GstBuffer *b1 = gst_buffer_new (), *b2 = gst_buffer_new ();
  GstEvent *ev = gst_event_new_eos ();
  GstMiniObject *o;
  GstFlowReturn ret;
  pusher p = { &q, GST_FLOW_ERROR, 0 };
  GThread *t;

  gst_dit_chunk_queue_init (&q, 2);
  /* stopped until started */
  fail_unless_equals_int (gst_dit_chunk_queue_push_buffer (&q,
          gst_buffer_new ()), GST_FLOW_FLUSHING);
  gst_dit_chunk_queue_start (&q);
  fail_unless_equals_int (gst_dit_chunk_queue_push_buffer (&q,
          gst_buffer_ref (b1)), GST_FLOW_OK);
  fail_unless (gst_dit_chunk_queue_push_event (&q, gst_event_ref (ev)));
  fail_unless_equals_int (gst_dit_chunk_queue_push_buffer (&q,
          gst_buffer_ref (b2)), GST_FLOW_OK);
  fail_unless_equals_int (gst_dit_chunk_queue_buffers (&q), 2);

  /* full: a third buffer blocks until the task takes one */
  t = g_thread_new ("push", push_one, &p);
  fail_if (finishes_within (&p, 100), "push beyond the limit did not block");
  o = gst_dit_chunk_queue_pop (&q, -1, &ret);
  fail_unless (o == GST_MINI_OBJECT_CAST (b1));
  gst_mini_object_unref (o);
  fail_unless (finishes_within (&p, 5000), "pop did not unblock the push");
  g_thread_join (t);
  fail_unless_equals_int (p.ret, GST_FLOW_OK);

  /* arrival order: the event before the second buffer */
  o = gst_dit_chunk_queue_pop (&q, -1, &ret);
  fail_unless (o == GST_MINI_OBJECT_CAST (ev));
  gst_mini_object_unref (o);
  o = gst_dit_chunk_queue_pop (&q, -1, &ret);
  fail_unless (o == GST_MINI_OBJECT_CAST (b2));
  gst_mini_object_unref (o);
  o = gst_dit_chunk_queue_pop (&q, -1, &ret);
  fail_unless (o != NULL && GST_IS_BUFFER (o));
  gst_mini_object_unref (o);

  /* empty: a timed pop returns nothing, still running */
  fail_unless (gst_dit_chunk_queue_pop (&q, 20000, &ret) == NULL);
  fail_unless_equals_int (ret, GST_FLOW_OK);
  fail_unless_equals_int (gst_dit_chunk_queue_buffers (&q), 0);
  gst_dit_chunk_queue_clear (&q);
  gst_buffer_unref (b1);
  gst_buffer_unref (b2);
  gst_event_unref (ev);
}

GST_END_TEST;

GST_START_TEST (test_queue_stop_fail_flush)
{
  GstDitChunkQueue q;
  GstFlowReturn ret;
  pusher p = { &q, GST_FLOW_OK, 0 };
  GThread *t;

  gst_dit_chunk_queue_init (&q, 1);
  gst_dit_chunk_queue_start (&q);
  fail_unless_equals_int (gst_dit_chunk_queue_push_buffer (&q,
          gst_buffer_new ()), GST_FLOW_OK);
  /* a blocked push returns the stop's result */
  t = g_thread_new ("push", push_one, &p);
  fail_if (finishes_within (&p, 50), "push beyond the limit did not block");
  gst_dit_chunk_queue_stop (&q, GST_FLOW_FLUSHING);
  fail_unless (finishes_within (&p, 5000), "stop did not wake the push");
  g_thread_join (t);
  fail_unless_equals_int (p.ret, GST_FLOW_FLUSHING);
  /* stopped: a pop returns nothing at once, events are refused */
  fail_unless (gst_dit_chunk_queue_pop (&q, -1, &ret) == NULL);
  fail_unless_equals_int (ret, GST_FLOW_FLUSHING);
  fail_if (gst_dit_chunk_queue_push_event (&q, gst_event_new_eos ()));
  /* the item stays until a flush */
  fail_unless_equals_int (gst_dit_chunk_queue_buffers (&q), 1);
  gst_dit_chunk_queue_flush (&q);
  fail_unless_equals_int (gst_dit_chunk_queue_buffers (&q), 0);

  /* the first failure wins until a restart */
  gst_dit_chunk_queue_start (&q);
  gst_dit_chunk_queue_fail (&q, GST_FLOW_ERROR);
  gst_dit_chunk_queue_fail (&q, GST_FLOW_EOS);
  fail_unless_equals_int (gst_dit_chunk_queue_push_buffer (&q,
          gst_buffer_new ()), GST_FLOW_ERROR);
  gst_dit_chunk_queue_start (&q);
  gst_dit_chunk_queue_fail (&q, GST_FLOW_EOS);
  fail_unless_equals_int (gst_dit_chunk_queue_push_buffer (&q,
          gst_buffer_new ()), GST_FLOW_EOS);

  /* raising the limit lets a blocked push through */
  gst_dit_chunk_queue_start (&q);
  fail_unless_equals_int (gst_dit_chunk_queue_push_buffer (&q,
          gst_buffer_new ()), GST_FLOW_OK);
  p.done = 0;
  p.ret = GST_FLOW_ERROR;
  t = g_thread_new ("push", push_one, &p);
  fail_if (finishes_within (&p, 50), "push beyond the limit did not block");
  gst_dit_chunk_queue_set_limit (&q, 2);
  fail_unless (finishes_within (&p, 5000), "a higher limit did not wake it");
  g_thread_join (t);
  fail_unless_equals_int (p.ret, GST_FLOW_OK);
  fail_unless_equals_int (gst_dit_chunk_queue_buffers (&q), 2);
  gst_dit_chunk_queue_clear (&q);
}

GST_END_TEST;

/* ---- GstDitPropDef on a small object ---- */

typedef struct
{
  GObject parent;
  gchar *name;
  gint count;
  guint level;
  guint64 seed;
  gdouble gain;
  gint stat;
} TestProps;
typedef GObjectClass TestPropsClass;

enum
{ P_0, P_NAME, P_COUNT, P_LEVEL, P_SEED, P_GAIN, P_STAT, N_P };

#define F(f) G_STRUCT_OFFSET (TestProps, f)
static const GstDitPropDef test_props[N_P] = {
  [P_NAME] = {"name-x", "Name", "A string", G_TYPE_STRING, .sdef = "tiny",
      .flags = GST_DIT_PARAM_READY, .field = F (name)},
  [P_COUNT] = {"count", "Count", "An int", G_TYPE_INT, -3, 9, 4,
      .flags = GST_DIT_PARAM_PLAYING, .field = F (count)},
  [P_LEVEL] = {"level", "Level", "A uint, no upper bound", G_TYPE_UINT, 1, 0,
      7, .flags = GST_DIT_PARAM_READY, .field = F (level)},
  [P_SEED] = {"seed", "Seed", "A uint64", G_TYPE_UINT64, 0, 0, 42,
      .flags = GST_DIT_PARAM_READY, .field = F (seed)},
  [P_GAIN] = {"gain", "Gain", "A double", G_TYPE_DOUBLE, 0.5, 2.0, 1.25,
      .flags = GST_DIT_PARAM_READY, .field = F (gain)},
  [P_STAT] = {"stat", "Stat", "Read-only", G_TYPE_INT, 0, 0, 5,
      .flags = GST_DIT_PARAM_RO, .field = F (stat)},
};

GType test_props_get_type (void);
G_DEFINE_TYPE (TestProps, test_props, G_TYPE_OBJECT);

static void
test_props_set (GObject * o, guint id, const GValue * v, GParamSpec * ps)
{
  gst_dit_prop_set (o, &test_props[id], v);
}

static void
test_props_get (GObject * o, guint id, GValue * v, GParamSpec * ps)
{
  gst_dit_prop_get (o, &test_props[id], v);
}

static void
test_props_finalize (GObject * o)
{
  gst_dit_props_clear (o, test_props, N_P);
  G_OBJECT_CLASS (test_props_parent_class)->finalize (o);
}

static void
test_props_class_init (TestPropsClass * klass)
{
  klass->set_property = test_props_set;
  klass->get_property = test_props_get;
  klass->finalize = test_props_finalize;
  gst_dit_props_install (klass, test_props, N_P);
}

static void
test_props_init (TestProps * self)
{
  gst_dit_props_init (self, test_props, N_P);
}

GST_START_TEST (test_prop_table)
{
  TestProps *t = g_object_new (test_props_get_type (), NULL);
  GObjectClass *k = G_OBJECT_GET_CLASS (t);
  GParamSpec *ps;
  gchar *name;
  gint count;
  guint64 seed;
  gdouble gain;

  ps = g_object_class_find_property (k, "count");
  fail_unless (ps && G_PARAM_SPEC_INT (ps)->minimum == -3
      && G_PARAM_SPEC_INT (ps)->maximum == 9
      && G_PARAM_SPEC_INT (ps)->default_value == 4);
  fail_unless (ps->flags & GST_PARAM_MUTABLE_PLAYING);
  ps = g_object_class_find_property (k, "level");
  fail_unless (ps && G_PARAM_SPEC_UINT (ps)->minimum == 1
      && G_PARAM_SPEC_UINT (ps)->maximum == G_MAXUINT);
  ps = g_object_class_find_property (k, "gain");
  fail_unless (ps && G_PARAM_SPEC_DOUBLE (ps)->maximum == 2.0);
  ps = g_object_class_find_property (k, "stat");
  fail_unless (ps && !(ps->flags & G_PARAM_WRITABLE));

  /* defaults in the fields; a read-only one is left alone */
  fail_unless_equals_string (t->name, "tiny");
  fail_unless_equals_int (t->count, 4);
  fail_unless_equals_int (t->level, 7);
  fail_unless (t->seed == 42 && t->gain == 1.25 && t->stat == 0);

  g_object_set (t, "name-x", "wan", "count", -2, "seed", G_GUINT64_CONSTANT
      (1) << 40, "gain", 0.75, NULL);
  fail_unless_equals_string (t->name, "wan");
  t->stat = 11;
  g_object_get (t, "name-x", &name, "count", &count, "seed", &seed, "gain",
      &gain, NULL);
  fail_unless_equals_string (name, "wan");
  fail_unless_equals_int (count, -2);
  fail_unless (seed == G_GUINT64_CONSTANT (1) << 40 && gain == 0.75);
  g_object_get (t, "stat", &count, NULL);
  fail_unless_equals_int (count, 11);
  g_free (name);
  g_object_set (t, "name-x", NULL, NULL);
  fail_unless (t->name == NULL);
  g_object_unref (t);
}

GST_END_TEST;

static Suite *
chunk_queue_suite (void)
{
  Suite *s = suite_create ("ditchunkqueue");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_queue_order_and_bound);
  tcase_add_test (tc, test_queue_stop_fail_flush);
  tcase_add_test (tc, test_prop_table);
  return s;
}

GST_CHECK_MAIN (chunk_queue);
