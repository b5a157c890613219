/* gateway._wsframe: client WebSocket text frames built in one allocation (issue 14).
 *
 * The pure-Python twins are in gateway/wsock.py (`py_masked_text_frame`,
 * `py_masked_b64_text_frame`); tests/test_wsframe_parity.py checks that both produce the same
 * bytes for any input. What the two functions build (RFC 6455 5.2, 5.3):
 *
 *   masked_text_frame(payload, mask)
 *       FIN + text opcode, the MASK bit, the payload length (7, 7+16 or 7+64 bits), the 4-byte
 *       masking key, then payload XOR key.
 *   masked_b64_text_frame(prefix, data, suffix, mask)
 *       the same frame for the payload prefix + base64(data) + suffix (standard alphabet, '='
 *       padding, no newline: binascii.b2a_base64(data, newline=False)). The voice backends'
 *       audio append is one such payload: `{"type":"input_audio_buffer.append","audio":"` +
 *       base64 + `"}`. Built here, the base64 text is never a Python object of its own.
 *
 * The mask must be bytes of exactly 4 (TypeError, ValueError); the other arguments may be any
 * object with a simple buffer (bytes, bytearray, memoryview), as b"".join takes. Nothing is
 * kept between calls. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Header length for a masked frame of `length` payload bytes (2 + extended length + key). */
static Py_ssize_t
header_size(Py_ssize_t length)
{
    return length < 126 ? 6 : length < 65536 ? 8 : 14;
}

static void
write_header(unsigned char *out, Py_ssize_t length, const unsigned char *mask)
{
    out[0] = 0x81; /* FIN, text */
    if (length < 126) {
        out[1] = (unsigned char)(0x80 | length);
        out += 2;
    }
    else if (length < 65536) {
        out[1] = 0x80 | 126;
        out[2] = (unsigned char)(length >> 8);
        out[3] = (unsigned char)length;
        out += 4;
    }
    else {
        uint64_t n = (uint64_t)length;
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (unsigned char)(n >> (56 - 8 * i));
        out += 10;
    }
    memcpy(out, mask, 4);
}

/* XOR `n` bytes in place with the key, the key's phase starting at 0. */
static void
apply_mask(unsigned char *data, Py_ssize_t n, const unsigned char *mask)
{
    uint64_t key8;
    unsigned char key[8] = {mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]};
    memcpy(&key8, key, 8);
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, data + i, 8);
        word ^= key8;
        memcpy(data + i, &word, 8);
    }
    for (; i < n; i++)
        data[i] ^= mask[i & 3];
}

static Py_ssize_t
b64_size(Py_ssize_t n)
{
    return (n + 2) / 3 * 4;
}

static void
b64_encode(unsigned char *out, const unsigned char *in, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[0] = B64[v >> 18];
        out[1] = B64[(v >> 12) & 63];
        out[2] = B64[(v >> 6) & 63];
        out[3] = B64[v & 63];
        out += 4;
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[0] = B64[v >> 18];
        out[1] = B64[(v >> 12) & 63];
        out[2] = '=';
        out[3] = '=';
    }
    else if (n - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[0] = B64[v >> 18];
        out[1] = B64[(v >> 12) & 63];
        out[2] = B64[(v >> 6) & 63];
        out[3] = '=';
    }
}

static int
get_mask(PyObject *obj, const unsigned char **mask)
{
    if (!PyBytes_CheckExact(obj)) {
        PyErr_Format(PyExc_TypeError, "mask must be bytes, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyBytes_GET_SIZE(obj) != 4) {
        PyErr_Format(PyExc_ValueError, "mask must be 4 bytes, got %zd", PyBytes_GET_SIZE(obj));
        return -1;
    }
    *mask = (const unsigned char *)PyBytes_AS_STRING(obj);
    return 0;
}

/* Frame `payload_size` bytes that `fill` writes into the frame's payload area, then mask them. */
static PyObject *
frame_of(Py_ssize_t payload_size, const unsigned char *mask, const Py_buffer *parts, int count,
         const Py_buffer *b64_input)
{
    Py_ssize_t head = header_size(payload_size);
    if (payload_size > PY_SSIZE_T_MAX - head)
        return PyErr_NoMemory();
    PyObject *frame = PyBytes_FromStringAndSize(NULL, head + payload_size);
    if (frame == NULL)
        return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(frame);
    write_header(out, payload_size, mask);
    unsigned char *body = out + head;
    unsigned char *cursor = body;
    /* parts[0], then base64(b64_input) when given, then parts[1] (count == 2). */
    memcpy(cursor, parts[0].buf, (size_t)parts[0].len);
    cursor += parts[0].len;
    if (b64_input != NULL) {
        b64_encode(cursor, (const unsigned char *)b64_input->buf, b64_input->len);
        cursor += b64_size(b64_input->len);
    }
    if (count == 2) {
        memcpy(cursor, parts[1].buf, (size_t)parts[1].len);
        cursor += parts[1].len;
    }
    apply_mask(body, payload_size, mask);
    return frame;
}

static PyObject *
wsframe_masked_text_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "masked_text_frame() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    const unsigned char *mask;
    if (get_mask(args[1], &mask) < 0)
        return NULL;
    Py_buffer payload;
    if (PyObject_GetBuffer(args[0], &payload, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *frame = frame_of(payload.len, mask, &payload, 1, NULL);
    PyBuffer_Release(&payload);
    return frame;
}

static PyObject *
wsframe_masked_b64_text_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "masked_b64_text_frame() takes 4 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    const unsigned char *mask;
    if (get_mask(args[3], &mask) < 0)
        return NULL;
    /* parts[0] = prefix, parts[1] = suffix, data between them as base64. */
    Py_buffer parts[2], data;
    if (PyObject_GetBuffer(args[0], &parts[0], PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &parts[1], PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&parts[0]);
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&parts[0]);
        PyBuffer_Release(&parts[1]);
        return NULL;
    }
    PyObject *frame = NULL;
    if (data.len > PY_SSIZE_T_MAX / 4 - 3 || parts[0].len > PY_SSIZE_T_MAX / 4 ||
        parts[1].len > PY_SSIZE_T_MAX / 4)
        PyErr_NoMemory();
    else
        frame = frame_of(parts[0].len + b64_size(data.len) + parts[1].len, mask, parts, 2, &data);
    PyBuffer_Release(&data);
    PyBuffer_Release(&parts[0]);
    PyBuffer_Release(&parts[1]);
    return frame;
}

/* ---- The read side (issue 14): complete server text frames without websockets' parser ----
 *
 *   read_text_messages(data, max_size) -> (list of bytes, int)
 *       The payloads of the complete frames at the start of `data` that are FIN + text, RSV bits
 *       clear (first byte 0x81), unmasked, with a payload of at most max_size bytes, and the
 *       offset of the first byte not taken: the first frame of any other form, or cut by the
 *       end of `data`. From there the bytes are websockets' (gateway/wsock.py
 *       `_CallbackConnection.data_received`). The pure twin is gateway/wsock.py
 *       `py_read_text_messages`; tests/test_wsread.py holds both to the same results. */

static PyObject *
wsframe_read_text_messages(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "read_text_messages() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t max_size = PyLong_AsSsize_t(args[1]);
    if (max_size == -1 && PyErr_Occurred())
        return NULL;
    if (max_size < 0) {
        PyErr_Format(PyExc_ValueError, "max_size must be >= 0, got %zd", max_size);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *data = (const unsigned char *)view.buf;
    Py_ssize_t end = view.len, pos = 0;
    PyObject *messages = PyList_New(0);
    if (messages == NULL)
        goto error;
    while (end - pos >= 2 && data[pos] == 0x81) {
        uint64_t length = data[pos + 1];
        Py_ssize_t start;
        if (length < 126) {
            start = pos + 2;
        }
        else if (length == 126) {
            if (end - pos < 4)
                break;
            length = ((uint64_t)data[pos + 2] << 8) | data[pos + 3];
            start = pos + 4;
        }
        else if (length == 127) {
            if (end - pos < 10)
                break;
            length = 0;
            for (int i = 0; i < 8; i++)
                length = (length << 8) | data[pos + 2 + i];
            start = pos + 10;
        }
        else {
            break; /* the mask bit: websockets refuses it */
        }
        if (length > (uint64_t)max_size || length > (uint64_t)(end - start))
            break;
        PyObject *message =
            PyBytes_FromStringAndSize((const char *)data + start, (Py_ssize_t)length);
        if (message == NULL)
            goto error;
        int failed = PyList_Append(messages, message);
        Py_DECREF(message);
        if (failed < 0)
            goto error;
        pos = start + (Py_ssize_t)length;
    }
    PyBuffer_Release(&view);
    PyObject *result = Py_BuildValue("(Nn)", messages, pos);
    return result; /* Py_BuildValue's N steals the list, also on failure */
error:
    Py_XDECREF(messages);
    PyBuffer_Release(&view);
    return NULL;
}

/* ---- end of the read side ---- */

/* ---- The audio delta's base64 (issue 14) ----
 *
 *   b64decode_strict(text) -> bytes
 *       binascii.a2b_base64(text, strict_mode=True), the same bytes and the same errors. The
 *       voice backends' audio deltas (gateway/realtime/protocol.py `_audio_delta`,
 *       gateway/live/events.py `_audio`) are base64 of 100-1000 ms of G.711; CPython's decoder
 *       reads them one character at a time through its padding state machine (~2.4 ns a
 *       character, the largest single cost of a delta). Here the canonical form is decoded a
 *       quad at a time: an ASCII str or bytes, a length that is a multiple of 4, every
 *       character in the standard alphabet except one or two '=' ending the last quad. For
 *       anything else (empty, whitespace, a '=' elsewhere, a bad character, a non-ASCII str,
 *       another type) binascii itself is called, so its checks and its error messages are the
 *       only ones. Its strict mode does not check a last quad's unused bits; neither does this.
 *       The pure twin is gateway/audio_b64.py `py_b64decode_strict`; tests/test_b64decode.py holds
 *       both to the same results. */

static unsigned char B64_VALUE[256];

static void
init_b64_values(void)
{
    memset(B64_VALUE, 0xFF, sizeof B64_VALUE);
    for (int i = 0; i < 64; i++)
        B64_VALUE[(unsigned char)B64[i]] = (unsigned char)i;
}

static PyObject *
b64_fallback(PyObject *text)
{
    PyObject *binascii = PyImport_ImportModule("binascii");
    if (binascii == NULL)
        return NULL;
    PyObject *decode = PyObject_GetAttrString(binascii, "a2b_base64");
    Py_DECREF(binascii);
    if (decode == NULL)
        return NULL;
    PyObject *args = PyTuple_Pack(1, text);
    PyObject *kwargs = args == NULL ? NULL : Py_BuildValue("{s:O}", "strict_mode", Py_True);
    PyObject *result = kwargs == NULL ? NULL : PyObject_Call(decode, args, kwargs);
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    Py_DECREF(decode);
    return result;
}

static PyObject *
wsframe_b64decode_strict(PyObject *module, PyObject *text)
{
    (void)module;
    const unsigned char *in;
    Py_ssize_t len;
    if (PyUnicode_CheckExact(text)) {
        if (PyUnicode_READY(text) < 0)
            return NULL;
        if (!PyUnicode_IS_ASCII(text))
            return b64_fallback(text);
        in = PyUnicode_1BYTE_DATA(text);
        len = PyUnicode_GET_LENGTH(text);
    }
    else if (PyBytes_CheckExact(text)) {
        in = (const unsigned char *)PyBytes_AS_STRING(text);
        len = PyBytes_GET_SIZE(text);
    }
    else {
        return b64_fallback(text);
    }
    if (len == 0 || len % 4 != 0)
        return b64_fallback(text);
    Py_ssize_t pads = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    Py_ssize_t quads = len / 4;
    PyObject *result = PyBytes_FromStringAndSize(NULL, quads * 3 - pads);
    if (result == NULL)
        return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    const unsigned char *v = B64_VALUE;
    unsigned int bad = 0;
    Py_ssize_t full = pads ? quads - 1 : quads;
    for (Py_ssize_t q = 0; q < full; q++, in += 4, out += 3) {
        unsigned int a = v[in[0]], b = v[in[1]], c = v[in[2]], d = v[in[3]];
        bad |= a | b | c | d;
        uint32_t n = (a << 18) | (b << 12) | (c << 6) | d;
        out[0] = (unsigned char)(n >> 16);
        out[1] = (unsigned char)(n >> 8);
        out[2] = (unsigned char)n;
    }
    if (pads) {
        unsigned int a = v[in[0]], b = v[in[1]], c = pads == 1 ? v[in[2]] : 0;
        bad |= a | b | c;
        out[0] = (unsigned char)((a << 2) | (b >> 4));
        if (pads == 1)
            out[1] = (unsigned char)((b << 4) | (c >> 2));
    }
    if (bad & 0xC0) { /* a character outside the alphabet (or '=' before the end) */
        Py_DECREF(result);
        return b64_fallback(text);
    }
    return result;
}

/* ---- end of the audio delta's base64 ---- */

static PyMethodDef module_methods[] = {
    {"masked_text_frame", (PyCFunction)(void (*)(void))wsframe_masked_text_frame, METH_FASTCALL,
     "masked_text_frame(payload, mask) -> bytes: one masked client text frame (FIN set)."},
    {"masked_b64_text_frame", (PyCFunction)(void (*)(void))wsframe_masked_b64_text_frame,
     METH_FASTCALL,
     "masked_b64_text_frame(prefix, data, suffix, mask) -> bytes: the masked client text frame "
     "of prefix + base64(data) + suffix."},
    {"read_text_messages", (PyCFunction)(void (*)(void))wsframe_read_text_messages, METH_FASTCALL,
     "read_text_messages(data, max_size) -> (list, int): the payloads of the complete unmasked "
     "FIN text frames at the start of data, and the offset of the first byte not taken."},
    {"b64decode_strict", (PyCFunction)wsframe_b64decode_strict, METH_O,
     "b64decode_strict(text) -> bytes: binascii.a2b_base64(text, strict_mode=True), the "
     "canonical form decoded a quad at a time."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wsframe_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gateway._wsframe",
    .m_doc = "Client WebSocket text frames in one allocation, server text frames read without "
              "websockets' parser, the audio deltas' strict base64 decoded a quad at a time "
              "(pure twins in gateway/wsock.py).",
    .m_size = 0,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__wsframe(void)
{
    init_b64_values();
    return PyModuleDef_Init(&wsframe_module);
}
