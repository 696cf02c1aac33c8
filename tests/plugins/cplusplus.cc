// cplusplus.cc - a test plugin in C++: jobd/handler.h compiles as C++ and
// its declaration gives jobd_plugin C linkage (no name mangling).
#include <cstdlib>
#include <cstring>

#include <jobd/handler.h>

static int
cxx_run(void *, const struct jobd_job_view *, jobd_ctx *ctx,
        struct jobd_result *result)
{
	if (jobd_ctx_stop_reason(ctx) != JOBD_STOP_NONE)
		return JOBD_STOPPED;
	result->result = strdup("{\"lang\": \"c++\"}");
	return JOBD_SUCCEEDED;
}

// C++11 has no designated initializers: the fields in order.
const struct jobd_plugin jobd_plugin = {
	JOBD_HANDLER_ABI, "c++", nullptr, cxx_run, nullptr,
};
