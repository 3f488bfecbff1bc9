/*
 * ksmlab._jhash: calc_checksum()'s jhash2(page, PAGE_SIZE / 4, 17) in C.
 *
 * The readable source of the model is ksmlab/checksum.py; this file is the same
 * function (lookup2, include/linux/jhash.h of 2.6.32) compiled, so a simulated
 * page costs about a microsecond instead of about half a millisecond.
 * tests/test_checksum.py pins both against the kernel's values and against
 * each other; KSMLAB_PURE=1 makes ksmlab ignore this module.
 *
 * The page's 1024 words are read little-endian (x86), as the Python does with
 * struct "<1024I", so the values are the same on any host. A stored content is
 * the page without its trailing zeros: the missing bytes are zero.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define PAGE_SIZE 4096
#define JHASH_GOLDEN_RATIO 0x9e3779b9u

/* __jhash_mix(a, b, c) of include/linux/jhash.h (lookup2) */
#define __jhash_mix(a, b, c) \
{ \
  a -= b; a -= c; a ^= (c >> 13); \
  b -= c; b -= a; b ^= (a << 8); \
  c -= a; c -= b; c ^= (b >> 13); \
  a -= b; a -= c; a ^= (c >> 12); \
  b -= c; b -= a; b ^= (a << 16); \
  c -= a; c -= b; c ^= (b >> 5); \
  a -= b; a -= c; a ^= (c >> 3); \
  b -= c; b -= a; b ^= (a << 10); \
  c -= a; c -= b; c ^= (b >> 15); \
}

/* jhash2(k, length, initval) of include/linux/jhash.h (lookup2) */
static uint32_t jhash2(const uint32_t *k, uint32_t length, uint32_t initval)
{
	uint32_t a, b, c, len;

	a = b = JHASH_GOLDEN_RATIO;
	c = initval;
	len = length;

	while (len >= 3) {
		a += k[0];
		b += k[1];
		c += k[2];
		__jhash_mix(a, b, c);
		k += 3; len -= 3;
	}

	c += length * 4;

	switch (len) {
	case 2 : b += k[1];
	/* fall through */
	case 1 : a += k[0];
	}

	__jhash_mix(a, b, c);

	return c;
}

static PyObject *page_jhash2(PyObject *self, PyObject *arg)
{
	Py_buffer view;
	uint32_t words[PAGE_SIZE / 4];
	const unsigned char *p;
	Py_ssize_t i;
	uint32_t sum;

	if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
		return NULL;
	if (view.len > PAGE_SIZE) {
		PyBuffer_Release(&view);
		PyErr_Format(PyExc_ValueError, "a page holds at most %d bytes, not %zd",
			     PAGE_SIZE, view.len);
		return NULL;
	}
	memset(words, 0, sizeof(words));
	p = view.buf;
#if PY_LITTLE_ENDIAN
	memcpy(words, p, view.len);
	(void)i;
#else
	for (i = 0; i < view.len; i++)
		words[i / 4] |= (uint32_t)p[i] << (8 * (i % 4));
#endif
	PyBuffer_Release(&view);
	sum = jhash2(words, PAGE_SIZE / 4, 17);
	return PyLong_FromUnsignedLong(sum);
}

static PyObject *py_jhash2(PyObject *self, PyObject *args)
{
	PyObject *seq, *fast;
	unsigned long length, initval;
	uint32_t *k;
	Py_ssize_t i, n;
	uint32_t sum;

	if (!PyArg_ParseTuple(args, "Okk:jhash2", &seq, &length, &initval))
		return NULL;
	fast = PySequence_Fast(seq, "jhash2: k must be a sequence of u32");
	if (fast == NULL)
		return NULL;
	n = PySequence_Fast_GET_SIZE(fast);
	if ((unsigned long)n < length) {
		Py_DECREF(fast);
		PyErr_Format(PyExc_IndexError, "jhash2: k holds %zd words, length is %lu", n, length);
		return NULL;
	}
	k = PyMem_Malloc((length ? length : 1) * sizeof(uint32_t));
	if (k == NULL) {
		Py_DECREF(fast);
		return PyErr_NoMemory();
	}
	for (i = 0; i < (Py_ssize_t)length; i++) {
		unsigned long w = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(fast, i));
		if (w == (unsigned long)-1 && PyErr_Occurred()) {
			PyMem_Free(k);
			Py_DECREF(fast);
			return NULL;
		}
		k[i] = (uint32_t)w;
	}
	Py_DECREF(fast);
	sum = jhash2(k, (uint32_t)length, (uint32_t)initval);
	PyMem_Free(k);
	return PyLong_FromUnsignedLong(sum);
}

static PyMethodDef methods[] = {
	{"page_jhash2", page_jhash2, METH_O,
	 "page_jhash2(content) -> int: jhash2 of the 4096-byte page whose first bytes are content."},
	{"jhash2", py_jhash2, METH_VARARGS,
	 "jhash2(k, length, initval) -> int: include/linux/jhash.h's jhash2 over length u32 of k."},
	{NULL, NULL, 0, NULL}
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT, "ksmlab._jhash",
	"calc_checksum()'s jhash2 compiled from C (see ksmlab.checksum).", -1, methods
};

PyMODINIT_FUNC PyInit__jhash(void)
{
	return PyModule_Create(&module);
}
