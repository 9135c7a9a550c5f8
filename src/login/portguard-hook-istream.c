/* Pass-through istream with a read hook (see portguard-hook-istream.h). */

#include "lib.h"
#include "istream-private.h"
#include "portguard-hook-istream.h"

struct portguard_hook_istream {
	struct istream_private istream;
	portguard_istream_hook_t *hook;
	void *context;
};

static ssize_t portguard_hook_istream_read(struct istream_private *stream)
{
	struct portguard_hook_istream *hstream =
		container_of(stream, struct portguard_hook_istream, istream);

	if (hstream->hook != NULL && !hstream->hook(hstream->context))
		hstream->hook = NULL;

	i_stream_seek(stream->parent, stream->parent_start_offset +
		      stream->istream.v_offset);
	return i_stream_read_copy_from_parent(&stream->istream);
}

struct istream *
portguard_hook_istream_create(struct istream *input,
			      portguard_istream_hook_t *hook, void *context)
{
	struct portguard_hook_istream *hstream;

	hstream = i_new(struct portguard_hook_istream, 1);
	hstream->hook = hook;
	hstream->context = context;
	hstream->istream.max_buffer_size = input->real_stream->max_buffer_size;
	hstream->istream.stream_size_passthrough = TRUE;
	hstream->istream.read = portguard_hook_istream_read;

	hstream->istream.istream.readable_fd = input->readable_fd;
	hstream->istream.istream.blocking = input->blocking;
	hstream->istream.istream.seekable = input->seekable;
	return i_stream_create(&hstream->istream, input,
			       i_stream_get_fd(input), 0);
}

void portguard_hook_istream_disable(struct istream *input)
{
	struct portguard_hook_istream *hstream =
		container_of(input->real_stream, struct portguard_hook_istream,
			     istream);

	hstream->hook = NULL;
}
